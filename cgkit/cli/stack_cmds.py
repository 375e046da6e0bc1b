"""Stack commands: ``preview``, ``up``, ``refresh``, ``destroy`` of one stack of an environment.

``cgkit up --env sandbox GM0344`` validates the municipality's config (nothing runs if it is
invalid), selects stack ``sandbox.gm0344``, generates its missing secrets, and runs the engine.
Like ``pulumi up``, ``up`` and ``destroy`` show what will change and ask on a terminal; ``--yes``
skips the question, and without a terminal they proceed only with ``--yes``.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cgkit import capacity, engine, policy_context
from cgkit.cluster import check_environment
from cgkit.cli.console import err, out
from cgkit.config import loader
from cgkit.conventions import stack_name
from cgkit.errors import CgkitError, ConfigError, InvalidArgumentError
from cgkit.gemeenten import lookup
from cgkit.project import find_root, state_dir
from cgkit.sandbox import environment_kubeconfig
from cgkit.secrets import provided_secret_names, secret_names

Target = Annotated[str, typer.Argument(help="A CBS code (GM0344) or 'platform'.")]
Env = Annotated[str, typer.Option("--env", "-e", help="Environment name (a folder in environments/).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Proceed without asking.")]
NoPolicy = Annotated[bool, typer.Option("--skip-policy", help="Do not run the policy pack (not recommended).")]
AllowDataLoss = Annotated[str | None, typer.Option(
    "--allow-data-loss", metavar="CODE", help="Delete or replace what holds the municipality's records (its "
    "namespace, PostgreSQL, media volumes) on purpose; repeat its code (GM0344) to confirm. Take a backup first.")]
NoRefresh = Annotated[bool, typer.Option(
    "--no-refresh", help="Do not read the live objects back first (faster; an object changed or deleted by "
    "hand then stays as it is, and the preview does not show it).")]


class TenantsRemain(CgkitError):
    """The platform stack was asked to go while municipality stacks still rely on it."""

    reference = "tenants-remain"


class SecretNotSet(CgkitError):
    """A secret only a person can provide (an OIDC client secret) is not in the stack config."""

    reference = "secret-not-set"


class ConfirmationNeeded(CgkitError):
    """A changing operation was asked for without a terminal to confirm it on and without --yes."""

    reference = "confirmation-needed"


#: What a command opens a stack for: whether it may create the stack (and its secrets), and whether
#: the program runs (and so needs the secrets). Read-only commands never create a stack, except
#: ``preview``, which says so (the program cannot run without the stack's secrets).
PURPOSES = ("up", "preview", "refresh", "destroy")


#: What ``open_stack`` says (after the stack's name) when a preview creates a stack never deployed.
PREVIEW_CREATED = ("was never deployed: created it (empty) so the program can be previewed with its secrets; "
                   "`cgkit up` will use the same ones")


class StackNotDeployed(CgkitError):
    """A command that reads a stack's state found no such stack (never deployed); nothing was created."""

    reference = "stack-not-deployed"


def open_stack(env: str, target: str, purpose: str = "up", notify: Callable[[str], object] | None = None,
               ) -> tuple[engine.EngineSettings, "engine.auto.Stack"]:
    """Validate ``target``'s config, probe its cluster, then open its stack for ``purpose``.

    ``purpose`` is one of PURPOSES. ``up`` creates the stack when it is new and generates its
    missing secrets; ``preview`` does the same (the program reads the secrets) and says so through
    ``notify`` when it creates a stack that was never deployed. ``refresh`` and ``destroy`` open
    only an existing stack and generate nothing; a municipality whose file is gone can still be
    destroyed (offboarding works from the stack's state). Secrets only a person can provide
    (``secrets.provided_secret_names``, an OIDC client secret) must be there already for ``up`` and
    ``preview``. The stack is created and its secrets generated under ``engine.stack_lock``, so
    commands opening one new stack at once create it and its secrets once. The policy pack gets a
    per-stack config (the municipality's domain, registries, waivers; the environment's enforcement) in
    ``.cgkit/policy/<stack>.json``. ``notify`` receives one-line notes (secrets generated);
    default: printed on stderr.

    Raises:
        InvalidArgumentError: ``target`` is neither 'platform' nor a CBS code of the list.
        ConfigError: the config is invalid (before any engine call).
        ClusterUnreachableError, ClusterUnauthorizedError: the environment's API server did not answer
            or refused us (before any engine call).
        StackNotDeployed: ``refresh`` or ``destroy`` of a stack that does not exist.
        SecretNotSet: the stack lacks a secret someone must set by hand.
        EngineError: the engine could not select or create the stack.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    runs_program = purpose in ("up", "preview")
    root = find_root()
    environment, cfg = _load_target(root, env, target, runs_program)
    name = stack_name(env, target)
    provided: list[str] = []
    if cfg is None:
        names, ctx, waivers = [], policy_context.platform_context(environment), []
    else:
        names, ctx, waivers = secret_names(cfg), policy_context.context_of(cfg), cfg.waivers
        provided = provided_secret_names(cfg) if runs_program else []
    pack_config = policy_context.write_pack_config(ctx, waivers, state_dir(root) / "policy" / f"{name}.json",
                                                   environment.policy)
    packs = _policy_packs(root)
    kubeconfig = check_environment(environment, root)
    settings = engine.EngineSettings(root=root, kubeconfig=kubeconfig, policy_packs=packs,
                                     policy_pack_configs=[pack_config] if packs else [])
    say = notify or err.print
    with engine.stack_lock(root, name):
        stack = engine.existing_stack(settings, name)
        if stack is None and not runs_program:
            raise StackNotDeployed(f"stack {name} does not exist: it was never deployed (or was forgotten); "
                                   f"there is nothing to {purpose}", hint=f"deploy it first: cgkit up --env {env} {target}")
        if stack is None:
            stack = engine.select_stack(settings, name)
            if purpose == "preview":
                say(f"stack {name} {PREVIEW_CREATED}")
        missing = engine.missing_config(stack, provided)
        if missing:
            raise SecretNotSet(f"stack {name} has no {', '.join(missing)}: the municipality file asks for OIDC "
                               "login and the provider's client secret is set by hand",
                               hint=" ; ".join(f"eval \"$(cgkit env --env {env})\" && pulumi config set --secret "
                                               f"cgkit:{m} <value> -s {name}" for m in missing))
        created = engine.ensure_secrets(stack, names) if runs_program else []
    if created:
        say(f"generated {len(created)} secret(s) into the stack config (encrypted)"
            + (" because the program reads them" if purpose == "preview" else ""))
    return settings, stack


def _load_target(root: Path, env: str, target: str, runs_program: bool = True):
    """Validate ``target`` and its config; return the environment and the municipality config (None for
    the platform, and for an offboarded municipality whose stack is read or destroyed).

    Raises:
        InvalidArgumentError: ``target`` is neither 'platform' nor a CBS code of the list.
        ConfigError: the config is invalid, or (``runs_program``) the tenant does not fit its size.
    """
    _check_target(target)
    environment = loader.load_environment(root, env)
    if target.lower() == "platform":
        return environment, None
    if not runs_program and not loader.municipality_file(root, env, target).exists():
        return environment, None  # offboarded: its stack can still be read and destroyed
    cfg = loader.load_municipality(root, env, target)
    if runs_program and (short := capacity.capacity_issues(root, cfg)):
        raise ConfigError(short)
    return environment, cfg


def shell_env(env: Env = "sandbox") -> None:
    """Print `export` lines that let plain `pulumi` use cgkit's engine setup (eval "$(cgkit env)")."""
    root = find_root()
    environment = loader.load_environment(root, env)
    settings = engine.EngineSettings(root=root, kubeconfig=environment_kubeconfig(environment, root))
    for key, value in sorted(engine.engine_env(settings).items()):
        if key == "PULUMI_CONFIG_PASSPHRASE":  # a secret: it is already in the caller's environment
            continue
        out.print(f"export {key}={shlex.quote(value)}", markup=False, highlight=False, soft_wrap=True)


def preview(target: Target, env: Env, skip_policy: NoPolicy = False, no_refresh: NoRefresh = False) -> None:
    """Show what `up` would change (live objects read back first), with the policy pack applied."""
    settings, stack = open_stack(env, target, "preview")
    outcome = engine.preview(stack, settings, engine.Operation(on_output=_stream, policies=not skip_policy,
                                                               refresh=not no_refresh))
    out.print(f"preview of {stack.name}: {_summary(outcome.changes, done=False)}{_drift(outcome, no_refresh)}",
              highlight=False, soft_wrap=True)


def up(target: Target, env: Env, yes: Yes = False, skip_policy: NoPolicy = False, no_refresh: NoRefresh = False,
       allow_data_loss: AllowDataLoss = None) -> None:
    """Create or update the stack's resources, after showing what will change.

    First the live objects are read back (refresh), so whatever changed or went by hand is put back.
    A change that would delete or replace what holds records stops at the preview, unless
    ``--allow-data-loss CODE`` says it is meant.
    """
    _load_target(find_root(), env, target)  # a bad target or config is named before any question
    allowed = _data_loss_allowed(target, allow_data_loss)
    _check_can_confirm(yes, "update")
    settings, stack = open_stack(env, target, "up")
    op = engine.Operation(on_output=_stream, policies=not skip_policy, refresh=not no_refresh)
    with engine.unprotected(stack, engine.protected_resources(stack) if allowed else ()):
        confirm(yes, "update", lambda: engine.preview(stack, settings, op))
        outcome = engine.up(stack, settings, op)
    out.print(f"up of {stack.name}: {_summary(outcome.changes)}{_drift(outcome, no_refresh)}", highlight=False,
              soft_wrap=True)
    for name, value in sorted(outcome.outputs.items()):
        _print_output(name, "[secret]" if value.secret else value.value)


def refresh(target: Target, env: Env, preview_only: Annotated[bool, typer.Option(
        "--preview-only", help="Only show drift; do not write state.")] = False) -> None:
    """Read the live objects back into the stack's state (or only show the drift)."""
    _, stack = open_stack(env, target, "refresh")
    op = engine.Operation(on_output=_stream)
    if preview_only:
        drift = engine.preview_refresh(stack, op).change_summary
        out.print(f"drift of {stack.name}: {_summary(drift, done=False)}")
        return
    result = engine.refresh(stack, op)
    out.print(f"refresh of {stack.name}: {_summary(result.summary.resource_changes or {})}")


def destroy(target: Target, env: Env, yes: Yes = False, allow_data_loss: AllowDataLoss = None) -> None:
    """Delete every resource of the stack, after showing what will go. A tenant holds records (its
    databases, media): destroying it needs ``--allow-data-loss CODE``."""
    _load_target(find_root(), env, target, runs_program=False)  # a bad target is named before any question
    allowed = _data_loss_allowed(target, allow_data_loss)
    _check_can_confirm(yes, "destroy")
    try:
        settings, stack = open_stack(env, target, "destroy")
    except StackNotDeployed:
        out.print(f"stack {stack_name(env, target)} does not exist: nothing to destroy")
        return
    if target.lower() == "platform":
        tenants = engine.stacks_with_resources(settings, f"{env}.gm")
        if tenants:
            raise TenantsRemain(f"refusing to destroy {stack.name}: {len(tenants)} tenant stack(s) still use it "
                                f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
                                hint=f"destroy them first: cgkit destroy --env {env} <code> (or cgkit fleet destroy)")
    held = engine.data_held(stack, allowed)
    op = engine.Operation(on_output=_stream)
    confirm(yes, "destroy", lambda: out.print(f"this deletes every resource of stack {stack.name}"))
    result = engine.destroy(stack, op, held)
    out.print(f"destroy of {stack.name}: {_summary(result.summary.resource_changes or {})}")


def _data_loss_allowed(target: str, code: str | None) -> bool:
    """Whether ``--allow-data-loss`` was given, and names ``target`` (case-insensitive).

    Raises:
        InvalidArgumentError: it names another municipality, or the target is the platform (which
            holds no records).
    """
    if code is None:
        return False
    if target.lower() == "platform":
        raise InvalidArgumentError(f"--allow-data-loss {code!r} is for a municipality's stack: the platform "
                                   "holds no records", hint="leave --allow-data-loss out")
    if code.strip().upper() != target.upper():
        raise InvalidArgumentError(f"--allow-data-loss {code!r} must repeat the municipality's code {target.upper()!r}",
                                   hint=f"--allow-data-loss {target.upper()}")
    return True


def _check_target(target: str) -> None:
    """Refuse a target that is neither 'platform' nor a CBS code of the list."""
    if target.lower() != "platform":
        try:
            lookup(target)
        except CgkitError as unknown:
            raise InvalidArgumentError(f"TARGET '{target}' is neither 'platform' nor a municipality: {unknown}",
                                       hint="give a CBS code such as GM0344, or 'platform'") from None


def _check_can_confirm(yes: bool, verb: str) -> None:
    """Refuse, before anything runs, a changing operation that could not be confirmed."""
    if not yes and not sys.stdin.isatty():
        raise ConfirmationNeeded(f"refusing to {verb} without confirmation: no terminal to ask on",
                                 hint="pass --yes to proceed")


def confirm(yes: bool, verb: str, show: Callable[[], object]) -> None:
    """Return when a changing ``verb`` may go ahead: ``yes``, or the user agreed on a terminal after ``show()``.

    Raises:
        ConfirmationNeeded: no terminal to ask on and not ``yes``.
        typer.Exit: the user declined (exit status 1).
    """
    _check_can_confirm(yes, verb)
    if yes:
        return
    show()
    if not typer.confirm(f"Do you want to perform this {verb}?", default=False):
        err.print(f"{verb} cancelled; nothing changed")
        raise typer.Exit(1)


def _print_output(name: str, value: object, indent: str = "  ") -> None:
    """Print one stack output; a mapping (like ``urls``) or a list (like ``wiring``, which app talks
    to which) one entry per line."""
    if isinstance(value, dict):
        out.print(f"{indent}{name}:", markup=False, highlight=False)
        for key, item in sorted(value.items()):
            _print_output(key, item, indent + "  ")
    elif isinstance(value, list):
        out.print(f"{indent}{name}:" + ("" if value else " none"), markup=False, highlight=False)
        for item in value:
            out.print(f"{indent}  {item}", markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(f"{indent}{name}: {value}", markup=False, highlight=False, soft_wrap=True)


def _stream(line: str) -> None:
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()


_DONE = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced",
         "create-replacement": "created as replacement", "delete-replaced": "deleted after replacement"}


def _summary(changes: dict[str, int], done: bool = True) -> str:
    """Summarise engine change counts: ``5 created, 1 updated`` (``5 to create`` for a preview)."""
    shown = {op: count for op, count in changes.items() if count and op != "same"}
    words = (f"{count} {_DONE.get(op, op)}" if done else f"{count} to {op}" for op, count in sorted(shown.items()))
    return ", ".join(words) or "no changes"


def _drift(outcome: engine.Outcome, skipped: bool) -> str:
    """The summary's second half: what the refresh found, or that there was none."""
    return "; refresh skipped (--no-refresh)" if skipped else f"; {outcome.drift.text()}"


def _policy_packs(root: Path) -> list[Path]:
    pack = root / "policies"
    return [pack] if (pack / "PulumiPolicy.yaml").is_file() else []
