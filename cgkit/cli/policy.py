"""``cgkit policy``: check Kubernetes manifests against the rules, and write the auditor report.

``cgkit/cli/app.py`` mounts `policy_app` as ``cgkit policy``. Exit statuses (`ExitStatus`): OK when no
unwaived mandatory rule is violated, FAILED (1) when one is, or when the input could not be used
(missing file, bad YAML, invalid waiver or config: one ``error:`` line on stderr naming the file).
"""

from __future__ import annotations

import enum
import json
import re
from pathlib import Path
from typing import Optional

import typer
import yaml

from cgkit import conventions
from cgkit.cli.exit_codes import ExitStatus
from cgkit.config import loader
from cgkit.config.yamlsource import CONFIG_LIMITS, check_bounds, read_text
from cgkit.errors import CgkitError, ConfigError, shown
from cgkit.haven import report as haven_report
from cgkit.haven.live import judge_environment
from cgkit.project import find_root
from cgkit.writer import WriteError, check_target, write_text
from policies import catalog, formats, manifests, openreports, waivers
from policies.config import (PolicySettings, config_section, context_from_config, policy_from_config, section,
                             waivers_from_config)
from policies.evaluate import evaluate
from policies.model import Context, Enforcement
from policies.registry import enforcement_levels


class Format(str, enum.Enum):
    """Output formats of ``policy check`` and ``haven check``."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


#: Output formats of ``policy check``: `Format`'s and OpenReports objects (`policies.openreports`).
CheckFormat = enum.Enum("CheckFormat", {**{f.name: f.value for f in Format}, "OPENREPORTS": "openreports"}, type=str)


class ReportFormat(str, enum.Enum):
    """Output formats of ``report``."""

    MD = "md"
    HTML = "html"
    JSON = "json"


#: ``--framework`` values: the frameworks of ``policies/controls.yaml`` by lower-case name (given in
#: any case). Data, not code: a framework added there is a choice here.
def _framework_names() -> dict[str, str]:
    """The frameworks of controls.yaml; none when it cannot be read: this runs when the CLI is
    imported, and every command must still start (the policy commands then name the broken file)."""
    try:
        return {n.upper(): n.lower() for n in catalog.load_controls()[1]}
    except catalog.CatalogError:
        return {"NONE": "none"}


FrameworkName = enum.Enum("FrameworkName", _framework_names(), type=str)


def _framework_option(what: str) -> typer.models.OptionInfo:
    return typer.Option(None, "--framework", case_sensitive=False,
                        help=f"Only what this framework needs: {what} (frameworks as in policies/controls.yaml).")


policy_app = typer.Typer(help="Check manifests against cgkit's policy rules; write the auditor report.",
                         no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo("\n".join(shown(line) for line in f"error: {message}".split("\n")), err=True)
    return typer.Exit(ExitStatus.FAILED)


def _read_mapping(path: Path, what: str) -> dict:
    """Read a YAML (or JSON) mapping through cgkit's input boundary; exit 1 naming the file otherwise."""
    try:
        text = read_text(path, str(path))
        check_bounds(text, str(path), CONFIG_LIMITS)
        data = yaml.safe_load(text)  # JSON is YAML too
    except ConfigError as e:
        raise _fail(f"cannot read {what}: {e.render()}") from None
    except yaml.YAMLError as e:
        raise _fail(f"cannot read {what}: {manifests.yaml_error(str(path), e)}") from None
    except (ValueError, TypeError) as e:
        raise _fail(f"{path}: cannot read {what}: {e}") from None
    if not isinstance(data, dict):
        raise _fail(f"{path}: {what} must be a mapping (key: value), not {type(data).__name__}")
    return data


def _config_section(config: Path) -> dict:
    """The section of a ``--config`` file (`policies.config.config_section`); exit 1 naming the file
    when it is not what the option expects."""
    try:
        return dict(config_section(_read_mapping(config, "policy config"), enforcement_levels()))
    except ValueError as e:
        raise _fail(f"{config}: not a policy-pack config: {e}") from None


def _municipality_section(root: Optional[Path], env: str, gemeente: str) -> dict:
    from cgkit import policy_context
    from cgkit.config import loader

    try:
        cfg = loader.load_municipality(root or find_root(), env, gemeente)
    except ImportError as e:  # a part of cgkit the loader needs is missing from this checkout
        raise _fail(f"cannot load the config of {gemeente} in {env}: {e}") from e
    return section(policy_context.context_of(cfg), cfg.waivers, cfg.environment.policy)


def build_context(config: Optional[Path], gemeente: Optional[str], domain: Optional[str],
                  registries: list[str], tenant_namespace: Optional[str], env: Optional[str] = None,
                  root: Optional[Path] = None) -> tuple[Context, list[waivers.Waiver], PolicySettings]:
    """The context, waivers and environment policy from ``--env`` + ``--gemeente`` (the municipality's
    config) or ``--config`` (a pack-config file), the context overridden field by field by the other flags.

    Raises CgkitError (ConfigError) when the municipality's config is invalid, WaiverError for a
    malformed waiver.
    """
    if env and gemeente:
        section = _municipality_section(root, env, gemeente)
    else:
        section = _config_section(config) if config else {}
    overrides = {"gemeenteCode": gemeente, "domain": domain, "allowedRegistries": registries or None,
                 "tenantNamespace": tenant_namespace}
    section = {**section, **{k: v for k, v in overrides.items() if v is not None}}
    wrong = [key for key in ("gemeenteCode", "domain", "tenantNamespace") if not isinstance(section.get(key, ""), str)]
    registries = section.get("allowedRegistries", [])
    if not isinstance(registries, list) or not all(isinstance(r, str) for r in registries):
        wrong.append("allowedRegistries")
    if wrong:
        raise _fail(f"{config}: {', '.join(wrong)}: expected text (allowedRegistries: a list of text)")
    try:
        policy = policy_from_config(section)
    except ValueError as e:
        raise _fail(f"{config}: {e}") from e
    ctx = context_from_config(section)
    if ctx.tenant_namespace and not re.fullmatch(conventions.DNS_LABEL_PATTERN, ctx.tenant_namespace):
        given = "--tenant-namespace" if tenant_namespace else "--gemeente" if gemeente else f"{config}: tenantNamespace"
        raise _fail(f"{given}: the tenant namespace {ctx.tenant_namespace!r} is not a namespace name: "
                    f"{conventions.DNS_LABEL_HINT} (a CBS code such as GM0344 gives gm0344)")
    return ctx, waivers_from_config(section), policy


@policy_app.command()
def check(
    paths: list[Path] = typer.Argument(..., help="Manifest files or directories (multi-document YAML, JSON); "
                                                 "- reads standard input."),
    output: CheckFormat = typer.Option(CheckFormat.TEXT, "--format", "-f",
                                       help="Output format; openreports: Report objects for kubectl apply --server-side."),
    gemeente: Optional[str] = typer.Option(None, help="CBS code (GM0344): the tenant and its expected labels."),
    domain: Optional[str] = typer.Option(None, help="The municipality's domain; Ingress hosts must lie within it."),
    registry: list[str] = typer.Option([], "--registry", help="An allowed image registry (repeatable)."),
    tenant_namespace: Optional[str] = typer.Option(None, help="Tenant namespace (default: from --gemeente)."),
    config: Optional[Path] = typer.Option(None, help="A policy-pack config file written by cgkit."),
    env: Optional[str] = typer.Option(None, help="With --gemeente: take domain, registries and waivers from "
                                                 "that municipality's config in this environment."),
    root: Optional[Path] = typer.Option(None, help="Project root holding environments/ (default: found "
                                                   "upward from here, as for every cgkit command)."),
    waivers_file: Optional[Path] = typer.Option(None, "--waivers",
                                                help="YAML with a 'waivers:' list, e.g. the municipality file."),
    framework: Optional[FrameworkName] = _framework_option("judge with the rules that serve its controls"),
) -> None:
    """Check manifests: one line per finding; exit 1 when a mandatory rule is violated.

    Rules that need context you did not give (domain, registries) do not judge; without --gemeente,
    namespaces named gm + four digits (and manifests without a namespace) count as tenant namespaces.
    """
    rules = catalog.load()
    try:
        ctx, waiver_list, policy = build_context(config, gemeente, domain, registry, tenant_namespace, env, root)
        if waivers_file:
            given = _read_mapping(waivers_file, "waivers")
            if "waivers" not in given and "code" not in given:  # a typo (waiver:) or the wrong file
                raise _fail(f"{waivers_file}: neither a municipality file nor a 'waivers:' list (keys: "
                            f"{', '.join(map(str, given))[:200]}); give a file with waivers: [...]")
            waiver_list += waivers.parse_all(given.get("waivers"))  # a municipality file may have none
        waivers.validate(waiver_list, enforcement_levels(), max_days=policy.max_waiver_days)
        docs = manifests.load(paths)
    except waivers.WaiverError as e:  # --env's waivers were checked by the loader, with lines
        given = ", ".join(str(p) for p in (config, waivers_file) if p)
        raise _fail(f"{given}: {e}" if given else str(e)) from e
    except manifests.ManifestError as e:
        raise _fail(str(e)) from e
    except CgkitError as e:
        typer.echo(e.render(), err=True)
        raise typer.Exit(ExitStatus.FAILED) from e
    if not docs:
        raise _fail(f"no Kubernetes objects in {', '.join(map(str, paths))} (files read: "
                    f"{len(manifests.files(paths))}; only *.yaml, *.yml and *.json are read from folders); "
                    "nothing was checked")
    if config and policy.level is not Enforcement.MANDATORY:  # said, never silent: nothing will block
        typer.echo(f"note: {config} sets enforcement: {policy.enforcement}: every finding is reported, none blocks",
                   err=True)
    selected = rules.framework_rules(framework.value) if framework else rules.rules
    findings = evaluate([d.obj for d in docs], ctx, rules=selected, sources=[d.source for d in docs],
                        waivers=waiver_list, enforcement=policy.level)
    findings.sort(key=lambda f: (f.subject.source or "", str(f.subject), f.rule_id))
    n_files = len({d.source for d in docs})
    render = {"text": lambda: formats.text(findings, len(docs), n_files),
              "json": lambda: formats.as_json(findings, len(docs), n_files),
              "sarif": lambda: formats.sarif(findings, selected),
              "openreports": lambda: openreports.as_yaml(openreports.reports(
                  [d.obj for d in docs], findings, selected, ctx,
                  name="cgkit-policy" + (f"-{framework.value}" if framework else "")))}
    typer.echo(render[output.value]().rstrip("\n"))
    raise typer.Exit(ExitStatus.FAILED if any(f.blocking for f in findings) else ExitStatus.OK)


@policy_app.command()
def report(
    env: str = typer.Option(..., help="Environment whose municipalities are reported (e.g. sandbox)."),
    output: ReportFormat = typer.Option(ReportFormat.MD, "--format", "-f", help="Report format."),
    out: Optional[Path] = typer.Option(None, help="Directory to write policy-report-<env>[-<framework>].<format> into "
                                                  "(default: print to stdout)."),
    manifests_dir: Optional[Path] = typer.Option(
        None, "--manifests", help="Rendered manifests per municipality: <dir>/<code>/*.yaml or <dir>/<code>.yaml "
                                  "(default: render each municipality of the environment)."),
    root: Optional[Path] = typer.Option(None, help="Project root holding environments/ (default: found "
                                                   "upward from here)."),
    haven: bool = typer.Option(False, "--haven", help="Add the Haven checks of the environment's live cluster "
                                                      "(`cgkit haven check`); needs the cluster."),
    framework: Optional[FrameworkName] = _framework_option("its controls, the rules that serve them and "
                                                           "those rules' findings"),
    with_backups: bool = typer.Option(False, "--backups", help="Add each municipality's last backup and last restore "
                                                               "drill, read from the backup store (BIO2 8.13)."),
) -> None:
    """Write the auditor report: rules with their fixture results, controls, every municipality and,
    with --haven, the Haven checks of the cluster, with --backups the backups and restore drills;
    with --framework only what that framework needs."""
    from policies import report as report_mod  # imported lazily: it pulls in the renderer

    if out is not None and out.exists() and not out.is_dir():  # before the minutes of rendering
        raise _fail(f"--out {out} is a file; give a directory (the report is written into it as "
                    f"policy-report-{env}[-<framework>].{output.value})")
    try:
        root = root or find_root()
        loader.environment_file(root, env)  # the name becomes a file name: refuse ../ and the like first
        if out is not None:  # a linked folder or report file is refused before the minutes of rendering
            check_target(root, out / f"policy-report-{env}{f'-{framework.value}' if framework else ''}."
                                     f"{output.value}", outside_ok=True)
        cluster = _haven_section(root, env) if haven else None  # first: a cluster that is not there fails fast
        tenants = (report_mod.tenants_from_manifest_dir(manifests_dir, env, root) if manifests_dir
                   else report_mod.tenants_from_environment(env, root))
    except (manifests.ManifestError, waivers.WaiverError, report_mod.RenderUnavailable) as e:
        raise _fail(str(e)) from e
    except CgkitError as e:
        typer.echo(e.render(), err=True)
        raise typer.Exit(ExitStatus.FAILED) from e
    if not tenants:
        typer.echo(f"error: no municipalities in environment {env}; the report covers the rules only", err=True)
    evidence = backup_evidence(root, env, [t.code for t in tenants]) if with_backups else None
    data = report_mod.build(env, tenants, haven=cluster, framework=framework.value if framework else None,
                            backups=evidence)
    text = {ReportFormat.MD: report_mod.markdown, ReportFormat.HTML: report_mod.html,
            ReportFormat.JSON: lambda d: json.dumps(d, indent=2)}[output](data)
    if out is None:
        typer.echo(text)
    else:
        target = out / f"policy-report-{env}{f'-{framework.value}' if framework else ''}.{output.value}"
        try:
            write_text(root, target, text, outside_ok=True)
        except WriteError as e:
            raise _fail(f"{e}" + (f"\nhint: {e.hint}" if e.hint else "")) from None
        typer.echo(f"wrote {target}")
    summary = data["summary"]
    short = [m["code"] + f" ({m['verdict']}" + (f": {m['error'].splitlines()[0][:150]}" if m["error"] else "") + ")"
             for m in data["municipalities"] if m["verdict"] != "compliant"]
    if short:
        typer.echo(f"not compliant: {len(short)} of {summary['municipalities']} municipalities: "
                   f"{', '.join(short[:10])}{', ...' if len(short) > 10 else ''}", err=True)
    if summary["failing_cases"]:
        typer.echo(f"{summary['failing_cases']} fixture case(s) do not give the verdict their name promises", err=True)
    if summary["haven_failed"]:
        typer.echo(f"{summary['haven_failed']} Haven check(s) failed on the cluster", err=True)
    unsafe = [b["code"] for b in evidence or [] if b["state"] != "backed up" and "not backed up by cgkit" not in b["state"]]
    if unsafe:
        typer.echo(f"no readable backup: {len(unsafe)} municipalities: {', '.join(unsafe[:10])}"
                   f"{', ...' if len(unsafe) > 10 else ''}", err=True)
    raise typer.Exit(ExitStatus.FAILED if summary["failing_cases"] or short or not tenants or summary["haven_failed"]
                     or unsafe else ExitStatus.OK)


def backup_evidence(root: Path, env: str, codes: list[str]) -> list[dict]:
    """Per municipality: whether cgkit backs it up, its newest complete backup and newest restore
    drill, read from the store with the tenant's own key; a tenant whose store or key cannot be read
    says why in its ``state`` (the report goes on)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from cgkit import backups
    from cgkit.cli.backup_cmds import tenant_s3

    rows = []
    for code in codes:
        row: dict = {"code": code, "last_backup": None, "last_drill": None}
        try:
            cfg = loader.load_municipality(root, env, code)
            if cfg.backups is None:
                row["state"] = "not backed up by cgkit" + (" (external database)" if cfg.database.mode == "external" else "")
            else:
                s3 = tenant_s3(cfg)
                found, _ = backups.list_backups(s3, cfg.backups.bucket, env, code)
                last = found[-1] if found else None
                row["last_backup"] = {"id": last.id, "created": last.created, "bytes": last.bytes} if last else None
                row["last_drill"] = backups.last_drill(s3, cfg.backups.bucket, env, code)
                row["state"] = "backed up" if last else "no backup yet"
        except (CgkitError, BotoCoreError, ClientError, OSError, ValueError) as unreadable:  # the report goes on
            row["state"] = f"unreadable: {str(unreadable).splitlines()[0][:200]}"
        rows.append(row)
    return rows


def _haven_section(root: Path, env: str) -> dict:
    """The Haven checks of ``env``'s cluster as the report's section (raises as judge_environment)."""
    results, server = judge_environment(loader.load_environment(root, env), root)
    return haven_report.as_dict(results, server)
