"""``cgkit fleet preview | up | refresh | destroy``: one operation over many municipality stacks.

``cgkit fleet up --env sandbox --parallel 4 --yes`` runs ``up`` on every municipality stack of the
environment, wave after wave (environment file ``waves:``), at most 4 at a time, with a live
progress line, then prints a summary table and writes ``.cgkit/runs/<run-id>/report.json`` with each
stack's engine log beside it. Exit status: 0 when every stack succeeded, 1 when any failed or was
skipped, 130 when interrupted. ``--resume RUN`` reruns only the stacks of that run that did not
succeed. ``up`` and ``destroy`` ask once on a terminal unless ``--yes``; without a terminal they run
only with ``--yes``. ``--shard K/N`` keeps one of N disjoint parts of the selection, so N runners
on one shared backend split an environment; ``cgkit fleet plan`` prints what a run would take
(wave by wave, no engine, no cluster).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from cgkit.cli.console import err, out
from cgkit.cli.exit_codes import ExitStatus
from cgkit.cli.stack_cmds import Env, NoPolicy, NoRefresh, Yes, confirm
from cgkit.cluster import check_environment
from cgkit.config import loader
from cgkit.config.model import EnvironmentFile
from cgkit.conventions import stack_name
from cgkit.errors import ConfigError, InvalidArgumentError
from cgkit.fleet import report
from cgkit.fleet import status as fleet_status
from cgkit.fleet.engine_runner import STACK_CREATED, stack_runner
from cgkit.fleet import cluster_run
from cgkit.fleet.in_cluster import NAMESPACE
from cgkit.fleet.scheduler import FleetRun, Status, run_waves, thread_pool
from cgkit.fleet.selection import SelectionError, Shard, WavePlan, in_shard, plan_waves, select_codes
from cgkit.fleet.view import LiveView, change_text, drift_text, summary_table
from cgkit.project import find_root
from components import releases
from cgkit import engine, interrupted, locks
from cgkit.stackops import RunOptions, check_target, engine_settings

fleet_app = typer.Typer(help="Preview, update, refresh or destroy many municipality stacks: waves, a "
                        "bounded worker pool, a summary and a report per run.", no_args_is_help=True)

Codes = Annotated[list[str] | None, typer.Argument(help="CBS codes; default: every municipality of the environment.",
                                                   show_default=False)]
Province = Annotated[str | None, typer.Option(help="Only the municipalities of this province.")]
WaveName = Annotated[str | None, typer.Option("--wave", help="Only this wave of the environment's waves.")]
Parallel = Annotated[int, typer.Option(min=1, max=64, help="Stacks run at once.")]
Resume = Annotated[str | None, typer.Option(help="Rerun only what failed or did not finish in this run "
                                            "(a run id under .cgkit/runs, or its folder).")]
InCluster = Annotated[bool, typer.Option("--in-cluster", help="Run each wave as a Kubernetes Indexed Job in "
                                         "the cgkit-fleet namespace (one pod per stack, --parallel at once) "
                                         "against the shared state backend.")]
ShardOpt = Annotated[str | None, typer.Option("--shard", metavar="K/N", help="Only part K of N disjoint parts "
                                              "of the selection (N runners on one shared backend).")]
ReleaseOpt = Annotated[str | None, typer.Option("--release", metavar="VERSION", help="The catalog release to roll "
                                                "out (components/releases.yaml); it must be the checkout's. Each "
                                                "tenant's hop is shown first.")]


@dataclass(frozen=True)
class Selection:
    """What a fleet command was asked to cover: CBS codes (None = all), a province, a wave, a shard."""

    codes: list[str] | None
    province: str | None
    wave: str | None
    shard: Shard | None

    @classmethod
    def of(cls, codes: list[str] | None, province: str | None, wave: str | None, shard: str | None) -> "Selection":
        """The options as given; ``shard`` parsed once here ("" is refused, never "all").

        Raises:
            SelectionError: ``shard`` is not K/N (Shard.parse).
        """
        return cls(codes, province, wave, Shard.parse(shard) if shard is not None else None)


@fleet_app.command("preview")
def preview(env: Env, codes: Codes = None, province: Province = None, wave: WaveName = None,
            parallel: Parallel = 4, resume: Resume = None, shard: ShardOpt = None, skip_policy: NoPolicy = False,
            no_refresh: NoRefresh = False, in_cluster: InCluster = False, release: ReleaseOpt = None) -> None:
    """Show what `up` would change in each stack (live objects read back first), with the policy pack applied."""
    _check_release(env, Selection.of(codes, province, wave, shard), release, parallel)
    _fleet("preview", env, Selection.of(codes, province, wave, shard), parallel, resume, True,
           RunOptions(skip_policy=skip_policy, refresh=not no_refresh), in_cluster)


@fleet_app.command("up")
def up(env: Env, codes: Codes = None, province: Province = None, wave: WaveName = None, parallel: Parallel = 4,
       resume: Resume = None, shard: ShardOpt = None, yes: Yes = False, skip_policy: NoPolicy = False,
       no_refresh: NoRefresh = False, in_cluster: InCluster = False, release: ReleaseOpt = None) -> None:
    """Create or update each stack's resources, wave after wave; live objects are read back first, so
    whatever changed or went by hand is put back. A backed-up tenant whose release changes is backed
    up first; a tenant on a newer release than the checkout's fails (no downgrade)."""
    _check_release(env, Selection.of(codes, province, wave, shard), release, parallel)
    _fleet("up", env, Selection.of(codes, province, wave, shard), parallel, resume, yes,
           RunOptions(skip_policy=skip_policy, refresh=not no_refresh), in_cluster)


@fleet_app.command("refresh")
def refresh(env: Env, codes: Codes = None, province: Province = None, wave: WaveName = None,
            parallel: Parallel = 4, resume: Resume = None, shard: ShardOpt = None,
            preview_only: Annotated[bool, typer.Option(
                "--preview-only", help="Only list the stacks whose live objects differ from state.")] = False,
            in_cluster: InCluster = False) -> None:
    """Read live objects back into each stack's state (or, with --preview-only, list the drift)."""
    _fleet("refresh", env, Selection.of(codes, province, wave, shard), parallel, resume, True,
           RunOptions(preview_only=preview_only), in_cluster)


@fleet_app.command("destroy")
def destroy(env: Env, codes: Codes = None, province: Province = None, wave: WaveName = None,
            parallel: Parallel = 4, resume: Resume = None, shard: ShardOpt = None, yes: Yes = False,
            allow_data_loss: Annotated[str | None, typer.Option(
                "--allow-data-loss", metavar="ENV", help="Required: every tenant holds records (its namespace, "
                "databases, media); repeat the environment's name to confirm. Take backups first.")] = None,
            in_cluster: InCluster = False) -> None:
    """Delete every resource of each stack, records included (--allow-data-loss ENV)."""
    if allow_data_loss is None or allow_data_loss.strip() != env:
        raise InvalidArgumentError(
            f"fleet destroy deletes every selected tenant's records: --allow-data-loss must repeat the environment "
            f"name '{env}'" + (f", not {allow_data_loss!r}" if allow_data_loss is not None else ""),
            hint=f"take backups first, then add --allow-data-loss {env}")
    _fleet("destroy", env, Selection.of(codes, province, wave, shard), parallel, resume, yes,
           RunOptions(allow_data_loss=True), in_cluster)


@fleet_app.command("status")
def status(env: Env, codes: Codes = None, province: Province = None, wave: WaveName = None, shard: ShardOpt = None,
           parallel: Parallel = 4,
           as_json: Annotated[bool, typer.Option("--json", help="Per tenant its release and state, as JSON.")] = False,
           ) -> None:
    """Which catalog release each selected tenant runs (its stack's output `release`), against the checkout's."""
    root = find_root()
    environment = loader.load_environment(root, env)
    found = fleet_status.releases_of(root, environment, _plans(root, environment, Selection.of(codes, province, wave,
                                                                                                shard)), parallel)
    current = releases.current().version
    if as_json:
        typer.echo(json.dumps({"env": env, "current": current, "tenants": [
            {"code": t.code, "release": t.release, "state": t.state} for t in found],
            "counts": fleet_status.counts(found)}, indent=2))
        return
    for tenant in found:
        out.print(f"{stack_name(env, tenant.code)}  {tenant.release or '-':<10}  {tenant.state}", highlight=False)
    out.print(f"checkout: release {current}; " + ", ".join(f"{n} {state}" for state, n in
                                                          fleet_status.counts(found).items()), highlight=False)


def _check_release(env: str, selection: Selection, release: str | None, parallel: int) -> None:
    """With ``--release``: refuse one that is not the checkout's, then show each selected tenant's hop.

    Raises:
        InvalidArgumentError: ``release`` is not the checked-out catalog's release.
    """
    if release is None:
        return
    current = releases.current().version
    if release.strip() != current:
        known = ", ".join(r.version for r in releases.load_releases())
        raise InvalidArgumentError(f"--release {release[:40]!r} is not this checkout's release ({current}; "
                                   f"releases on record: {known})",
                                   hint="check out the commit of that release, or pass --release " + current)
    root = find_root()
    environment = loader.load_environment(root, env)
    for tenant in fleet_status.releases_of(root, environment, _plans(root, environment, selection), parallel):
        err.print(f"{stack_name(env, tenant.code)}: {tenant.hop_text(current)}", highlight=False)


@fleet_app.command("plan")
def plan(env: Env, codes: Codes = None, province: Province = None, wave: WaveName = None, shard: ShardOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="Waves and stacks as JSON.")] = False) -> None:
    """Print the stacks a fleet run with this selection would take, wave by wave, one `<env>.<code>`
    per line (the waves on stderr), without the engine or the cluster."""
    root = find_root()
    selection = Selection.of(codes, province, wave, shard)
    plans = _plans(root, loader.load_environment(root, env), selection)
    if as_json:
        typer.echo(json.dumps({"env": env, "shard": selection.shard and str(selection.shard), "waves": [
            {"name": p.name, "max_failure_rate": p.max_failure_rate,
             "stacks": [stack_name(env, c) for c in p.codes]} for p in plans]}, indent=2))
        return
    for wave_plan in plans:
        err.print(f"wave {wave_plan.name} ({len(wave_plan.codes)})", highlight=False)
        for code in wave_plan.codes:
            typer.echo(stack_name(env, code))


def _plans(root: Path, environment: EnvironmentFile, selection: Selection,
           resume: str | None = None) -> list[WavePlan]:
    """The waves of a run: the environment's waves over the selected (or resumed) codes; [] when the
    shard holds none of them (said on stderr).

    Raises:
        ConfigError: a wave names a municipality without a file. SelectionError: as select_codes,
        plan_waves, and a resumed run of another environment or with nothing left.
    """
    env = environment.name
    unfiled = loader.wave_file_issues(root, env)  # a canary without a file would silently not run
    if unfiled:
        raise ConfigError(unfiled)
    if resume is not None and not resume.strip():  # "" names no run; it is not "no --resume"
        raise SelectionError("--resume '' names no run", hint="give a run id from .cgkit/runs/ or the path of its "
                                                              "folder or report.json; leave --resume out to run all")
    codes = _resumed_codes(root, resume, env, selection.codes) if resume is not None else selection.codes
    onboarded = loader.municipality_codes(root, env)
    plans = plan_waves(environment.waves, select_codes(onboarded, codes, selection.province), selection.wave)
    no_file = sorted({c for p in plans for c in p.codes} - set(onboarded))
    if no_file:
        err.print(f"no municipality file for {', '.join(no_file)}: each fails as a config error when run "
                  f"(cgkit onboard CODE --env {env})", highlight=False, soft_wrap=True)
    if selection.shard is None:
        return plans
    plans = in_shard(plans, selection.shard)
    if not plans:  # the other runners have the work
        err.print(f"shard {selection.shard} holds none of the selected stacks: nothing to run", highlight=False)
    return plans


def _fleet(verb: str, env: str, selection: Selection, parallel: int, resume: str | None, yes: bool,
           options: RunOptions, in_cluster: bool = False) -> None:
    root = find_root()
    environment = loader.load_environment(root, env)
    plans = _plans(root, environment, selection, resume)
    if not plans:
        return
    # Once up front: a cluster that is down fails the run here, not every stack one by one.
    check_environment(environment, root)
    confirm(yes, verb, lambda: out.print(f"fleet {verb} of {env}: {_plan_text(plans)}, {parallel} at a time"))
    info, run_dir = report.new_run(root, verb, env, parallel, resumed_from=resume and _run_id(resume),
                                   options={"preview_only": options.preview_only, "skip_policy": options.skip_policy,
                                            "refresh": options.refresh, "in_cluster": in_cluster,
                                            "shard": selection.shard and str(selection.shard)})
    if in_cluster:
        wave_runner = cluster_run.wave_runner_for(root, environment, verb, plans, parallel, options, run_dir,
                                                  progress=lambda line: err.print(line, highlight=False))
    else:
        wave_runner = thread_pool(stack_runner(verb, env, run_dir, options), parallel)
    where = f"{parallel} pod(s) at a time in namespace {NAMESPACE}" if in_cluster else f"{parallel} at a time"
    err.print(f"run {info.run_id}: {_plan_text(plans)}, {where}", highlight=False)
    start = time.monotonic()
    with LiveView(err, verb, env, sum(len(p.codes) for p in plans)) as view:
        run = run_waves(plans, wave_runner, on_update=view.update)
    path = report.write_report(run_dir, report.build_report(info, run, time.monotonic() - start), root)
    _print_summary(run, env, verb, options)
    out.print(f"report: {path}", highlight=False, soft_wrap=True)
    if run.interrupted:
        raise typer.Exit(ExitStatus.INTERRUPTED)
    if not run.ok:
        raise typer.Exit(ExitStatus.FAILED)


def _resumed_codes(root: Path, resume: str, env: str, codes: list[str] | None) -> list[str]:
    previous = report.load_report(root, resume)
    if previous.get("env") != env:
        raise SelectionError(f"run {previous.get('run_id')} was for environment '{previous.get('env')}', not '{env}'",
                             hint=f"pass --env {previous.get('env')}")
    unfinished = report.unfinished_codes(previous)
    if codes:
        unfinished = sorted(set(unfinished) & {c.upper() for c in codes})
    if not unfinished:
        raise SelectionError(f"nothing to resume: every selected stack of run {previous.get('run_id')} succeeded")
    return unfinished


def _print_summary(run: FleetRun, env: str, verb: str, options: RunOptions) -> None:
    out.print(summary_table(run, env, verb))
    for wave in run.waves:
        if wave.stopped:
            out.print(f"[red]wave {wave.plan.name}: {wave.failed} of {len(wave.plan.codes)} failed "
                      f"({wave.failure_rate:.0%} > {wave.plan.max_failure_rate:.0%}); later waves skipped[/]")
    if verb == "refresh" and options.preview_only:
        drifted = [r for r in run.results if r.status == Status.SUCCEEDED and r.changed]
        out.print(f"drift in {len(drifted)} stack(s)" + "".join(
            f"\n  {env}.{r.code.lower()}: {change_text(r.changes)}" for r in drifted), highlight=False)
    elif verb in ("preview", "up") and options.refresh:
        drifted = [r for r in run.results if drift_text(r.changes)]
        out.print(f"refresh found drift in {len(drifted)} stack(s)" + "".join(
            f"\n  {env}.{r.code.lower()}: {drift_text(r.changes)}" for r in drifted)
            + ("; up put it back" if verb == "up" and drifted else ""), highlight=False)
    elif verb in ("preview", "up"):
        out.print("refresh skipped (--no-refresh): objects changed or deleted by hand were not looked for")
    created = [r.code for r in run.results if r.changes.get(STACK_CREATED)]
    if created:
        out.print(f"{len(created)} stack(s) never deployed were created (empty, with their generated secrets) "
                  f"so the program could be previewed: {', '.join(created[:10])}{', ...' if len(created) > 10 else ''}",
                  highlight=False, soft_wrap=True)


def _plan_text(plans: list[WavePlan]) -> str:
    total = sum(len(p.codes) for p in plans)
    return f"{total} stack(s) in wave(s) " + ", ".join(f"{p.name} ({len(p.codes)})" for p in plans)


def _run_id(resume: str) -> str:
    path = Path(resume)
    return path.parent.name if path.name == report.REPORT_FILE else path.name


@fleet_app.command("unlock")
def unlock(env: Env, codes: Annotated[list[str] | None, typer.Argument(
        help="CBS codes or 'platform'; default: every stack of the environment.", show_default=False)] = None) -> None:
    """Remove the stack locks whose holder is provably gone (an engine of this machine that no longer
    runs, a runner pod of --in-cluster that ended or no longer exists), and the operations that
    engine left unfinished in the stack's state; name the other locks and leave them. Exit 1 when a
    lock stays."""
    root = find_root()
    for code in codes or []:
        check_target(code)
    environment = loader.load_environment(root, env)
    settings = engine_settings(root, environment, cluster=False)
    backend = engine.backend_of(settings)
    runner_pods = cluster_run.runner_pods_of(root, environment)
    everything = locks.backend_locks(backend)
    names = {stack_name(env, c) for c in codes} if codes else {lock.stack for lock in everything
                                                               if lock.stack.startswith(f"{env}.")}
    selected = [lock for lock in everything if lock.stack in names]
    kept = 0
    for lock in selected:
        gone, why = locks.holder_gone(lock, runner_pods=runner_pods)
        dropped = interrupted.release(settings, backend, lock) if gone else []
        kept += not gone
        out.print(f"{lock.stack}: {'removed' if gone else 'kept'} the lock {why}"
                  + ("" if gone else f"; if you know it is gone: pulumi cancel -s {lock.stack}"),
                  markup=False, highlight=False, soft_wrap=True)
        if dropped:
            out.print(f"{lock.stack}: dropped {len(dropped)} operation(s) its engine left unfinished "
                      f"({engine.named(dropped)}); the next up reads "
                      "every object back and takes over any it created", markup=False, highlight=False, soft_wrap=True)
    if not selected:
        out.print(f"no lock on {', '.join(sorted(names)) if codes else f'any stack of {env}'}",
                  markup=False, highlight=False)
    if kept:
        raise typer.Exit(ExitStatus.FAILED)
