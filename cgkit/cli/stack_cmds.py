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

from cgkit import engine, policy_context
from cgkit.cli.console import err, out
from cgkit.config import loader
from cgkit.conventions import stack_name
from cgkit.errors import CgkitError
from cgkit.project import find_root, state_dir
from cgkit.secrets import secret_names

Target = Annotated[str, typer.Argument(help="A CBS code (GM0344) or 'platform'.")]
Env = Annotated[str, typer.Option("--env", "-e", help="Environment name (a folder in environments/).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Proceed without asking.")]
NoPolicy = Annotated[bool, typer.Option("--skip-policy", help="Do not run the policy pack (not recommended).")]


class ConfirmationNeeded(CgkitError):
    """A changing operation was asked for without a terminal to confirm it on and without --yes."""

    reference = "confirmation-needed"


def open_stack(env: str, target: str, notify: Callable[[str], object] | None = None,
               ) -> tuple[engine.EngineSettings, "engine.auto.Stack"]:
    """Validate ``target``'s config, then select its stack and ensure its secrets.

    ``notify`` receives the one-line notes (secrets generated); default: printed on stderr. The policy pack gets a per-stack config (the municipality's domain, registries, waivers) in
    ``.cgkit/policy/<stack>.json``.

    Raises:
        ConfigError: the config is invalid (before any engine call).
        EngineError: the engine could not select the stack.
    """
    root = find_root()
    environment = loader.load_environment(root, env)
    name = stack_name(env, target)
    if target.lower() == "platform":
        names, ctx, waivers = [], policy_context.platform_context(environment), []
    else:
        cfg = loader.load_municipality(root, env, target)
        names, ctx, waivers = secret_names(cfg), policy_context.context_of(cfg), policy_context.waivers_of(cfg)
    pack_config = policy_context.write_pack_config(ctx, waivers, state_dir(root) / "policy" / f"{name}.json")
    packs = _policy_packs(root)
    settings = engine.EngineSettings(root=root, kubeconfig=_kubeconfig(root, environment), policy_packs=packs,
                                     policy_pack_configs=[pack_config] if packs else [])
    stack = engine.select_stack(settings, name)
    created = engine.ensure_secrets(stack, names)
    if created:
        (notify or err.print)(f"generated {len(created)} secret(s) into the stack config (encrypted)")
    return settings, stack


def shell_env(env: Env = "sandbox") -> None:
    """Print `export` lines that let plain `pulumi` use cgkit's engine setup (eval "$(cgkit env)")."""
    root = find_root()
    environment = loader.load_environment(root, env)
    settings = engine.EngineSettings(root=root, kubeconfig=_kubeconfig(root, environment))
    for key, value in sorted(engine.engine_env(settings).items()):
        if key == "PULUMI_CONFIG_PASSPHRASE":  # a secret: it is already in the caller's environment
            continue
        out.print(f"export {key}={shlex.quote(value)}", markup=False, highlight=False, soft_wrap=True)


def preview(target: Target, env: Env, skip_policy: NoPolicy = False) -> None:
    """Show what `up` would change, with the policy pack applied."""
    settings, stack = open_stack(env, target)
    result = engine.preview(stack, settings, engine.Operation(on_output=_stream, policies=not skip_policy))
    out.print(f"preview of {stack.name}: {_summary(result.change_summary)}")


def up(target: Target, env: Env, yes: Yes = False, skip_policy: NoPolicy = False) -> None:
    """Create or update the stack's resources, after showing what will change."""
    settings, stack = open_stack(env, target)
    op = engine.Operation(on_output=_stream, policies=not skip_policy)
    confirm(yes, "update", lambda: engine.preview(stack, settings, op))
    result = engine.up(stack, settings, op)
    out.print(f"up of {stack.name}: {_summary(result.summary.resource_changes or {})}")
    for name, value in sorted(result.outputs.items()):
        out.print(f"  {name}: {'[secret]' if value.secret else value.value}")


def refresh(target: Target, env: Env, preview_only: Annotated[bool, typer.Option(
        "--preview-only", help="Only show drift; do not write state.")] = False) -> None:
    """Read the live objects back into the stack's state (or only show the drift)."""
    _, stack = open_stack(env, target)
    op = engine.Operation(on_output=_stream)
    if preview_only:
        drift = engine.preview_refresh(stack, op).change_summary
        out.print(f"drift of {stack.name}: {_summary(drift)}")
        return
    result = engine.refresh(stack, op)
    out.print(f"refresh of {stack.name}: {_summary(result.summary.resource_changes or {})}")


def destroy(target: Target, env: Env, yes: Yes = False) -> None:
    """Delete every resource of the stack, after showing what will go."""
    _, stack = open_stack(env, target)
    op = engine.Operation(on_output=_stream)
    confirm(yes, "destroy", lambda: out.print(f"this deletes every resource of stack {stack.name}"))
    result = engine.destroy(stack, op)
    out.print(f"destroy of {stack.name}: {_summary(result.summary.resource_changes or {})}")


def confirm(yes: bool, verb: str, show: Callable[[], object]) -> None:
    """Return when a changing ``verb`` may go ahead: ``yes``, or the user agreed on a terminal after ``show()``.

    Raises:
        ConfirmationNeeded: no terminal to ask on and not ``yes``.
        typer.Exit: the user declined (exit status 1).
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationNeeded(f"refusing to {verb} without confirmation: no terminal to ask on",
                                 hint="pass --yes to proceed")
    show()
    if not typer.confirm(f"Do you want to perform this {verb}?", default=False):
        raise typer.Exit(1)


def _stream(line: str) -> None:
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()


def _summary(changes: dict[str, int]) -> str:
    shown = {op: count for op, count in changes.items() if count and op != "same"}
    return ", ".join(f"{count} to {op}" for op, count in sorted(shown.items())) or "no changes"


def _kubeconfig(root: Path, environment) -> Path | None:
    if environment.cluster.sandbox:
        from cgkit import sandbox

        return sandbox.kubeconfig_path(root)
    return Path(environment.cluster.kubeconfig) if environment.cluster.kubeconfig else None


def _policy_packs(root: Path) -> list[Path]:
    pack = root / "policies"
    return [pack] if (pack / "PulumiPolicy.yaml").is_file() else []
