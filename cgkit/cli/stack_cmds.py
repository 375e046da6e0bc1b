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


class TenantsRemain(CgkitError):
    """The platform stack was asked to go while municipality stacks still rely on it."""

    reference = "tenants-remain"


class SecretNotSet(CgkitError):
    """A secret only a person can provide (an OIDC client secret) is not in the stack config."""

    reference = "secret-not-set"


class ConfirmationNeeded(CgkitError):
    """A changing operation was asked for without a terminal to confirm it on and without --yes."""

    reference = "confirmation-needed"


def open_stack(env: str, target: str, destroying: bool = False, notify: Callable[[str], object] | None = None,
               ) -> tuple[engine.EngineSettings, "engine.auto.Stack"]:
    """Validate ``target``'s config, then select its stack and ensure its secrets.

    Generated secrets are created when missing; secrets only a person can provide
    (``secrets.provided_secret_names``, an OIDC client secret) must be there already.

    The policy pack gets a per-stack config (the municipality's domain, registries, waivers) in
    ``.cgkit/policy/<stack>.json``. ``destroying``: a municipality whose file is gone can still be
    destroyed (offboarding works from the stack's state). ``notify`` receives the one-line notes
    (secrets generated); default: printed on stderr.

    Raises:
        InvalidArgumentError: ``target`` is neither 'platform' nor a CBS code of the list.
        ConfigError: the config is invalid (before any engine call).
        EngineError: the engine could not select the stack.
        SecretNotSet: the stack lacks a secret someone must set by hand.
    """
    root = find_root()
    environment, cfg = _load_target(root, env, target, destroying)
    name = stack_name(env, target)
    provided: list[str] = []
    if cfg is None:
        names, ctx, waivers = [], policy_context.platform_context(environment), []
    else:
        names, ctx, waivers = secret_names(cfg), policy_context.context_of(cfg), policy_context.waivers_of(cfg)
        provided = [] if destroying else provided_secret_names(cfg)
    pack_config = policy_context.write_pack_config(ctx, waivers, state_dir(root) / "policy" / f"{name}.json")
    packs = _policy_packs(root)
    settings = engine.EngineSettings(root=root, kubeconfig=environment_kubeconfig(environment, root), policy_packs=packs,
                                     policy_pack_configs=[pack_config] if packs else [])
    stack = engine.select_stack(settings, name)
    missing = engine.missing_config(stack, provided)
    if missing:
        raise SecretNotSet(f"stack {name} has no {', '.join(missing)}: the municipality file asks for OIDC login "
                           "and the provider's client secret is set by hand",
                           hint=" ; ".join(f"eval \"$(cgkit env --env {env})\" && pulumi config set --secret "
                                           f"cgkit:{m} <value> -s {name}" for m in missing))
    created = engine.ensure_secrets(stack, names)
    if created:
        (notify or err.print)(f"generated {len(created)} secret(s) into the stack config (encrypted)")
    return settings, stack


def _load_target(root: Path, env: str, target: str, destroying: bool = False):
    """Validate ``target`` and its config; return the environment and the municipality config (None for
    the platform, and for an offboarded municipality being destroyed).

    Raises:
        InvalidArgumentError: ``target`` is neither 'platform' nor a CBS code of the list.
        ConfigError: the config is invalid, or (not destroying) the tenant does not fit its size.
    """
    _check_target(target)
    environment = loader.load_environment(root, env)
    offboarded = destroying and not loader.municipality_file(root, env, target).exists()
    if target.lower() == "platform" or offboarded:
        return environment, None
    cfg = loader.load_municipality(root, env, target)
    if not destroying and (short := capacity.capacity_issues(root, cfg)):
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


def preview(target: Target, env: Env, skip_policy: NoPolicy = False) -> None:
    """Show what `up` would change, with the policy pack applied."""
    settings, stack = open_stack(env, target)
    result = engine.preview(stack, settings, engine.Operation(on_output=_stream, policies=not skip_policy))
    out.print(f"preview of {stack.name}: {_summary(result.change_summary, done=False)}")


def up(target: Target, env: Env, yes: Yes = False, skip_policy: NoPolicy = False) -> None:
    """Create or update the stack's resources, after showing what will change."""
    _load_target(find_root(), env, target)  # a bad target or config is named before any question
    _check_can_confirm(yes, "update")
    settings, stack = open_stack(env, target)
    op = engine.Operation(on_output=_stream, policies=not skip_policy)
    confirm(yes, "update", lambda: engine.preview(stack, settings, op))
    result = engine.up(stack, settings, op)
    out.print(f"up of {stack.name}: {_summary(result.summary.resource_changes or {})}")
    for name, value in sorted(result.outputs.items()):
        _print_output(name, "[secret]" if value.secret else value.value)


def refresh(target: Target, env: Env, preview_only: Annotated[bool, typer.Option(
        "--preview-only", help="Only show drift; do not write state.")] = False) -> None:
    """Read the live objects back into the stack's state (or only show the drift)."""
    _, stack = open_stack(env, target)
    op = engine.Operation(on_output=_stream)
    if preview_only:
        drift = engine.preview_refresh(stack, op).change_summary
        out.print(f"drift of {stack.name}: {_summary(drift, done=False)}")
        return
    result = engine.refresh(stack, op)
    out.print(f"refresh of {stack.name}: {_summary(result.summary.resource_changes or {})}")


def destroy(target: Target, env: Env, yes: Yes = False) -> None:
    """Delete every resource of the stack, after showing what will go."""
    _load_target(find_root(), env, target, destroying=True)  # a bad target is named before any question
    _check_can_confirm(yes, "destroy")
    settings, stack = open_stack(env, target, destroying=True)
    if target.lower() == "platform":
        tenants = engine.stacks_with_resources(settings, f"{env}.gm")
        if tenants:
            raise TenantsRemain(f"refusing to destroy {stack.name}: {len(tenants)} tenant stack(s) still use it "
                                f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
                                hint=f"destroy them first: cgkit destroy --env {env} <code> (or cgkit fleet destroy)")
    op = engine.Operation(on_output=_stream)
    confirm(yes, "destroy", lambda: out.print(f"this deletes every resource of stack {stack.name}"))
    result = engine.destroy(stack, op)
    out.print(f"destroy of {stack.name}: {_summary(result.summary.resource_changes or {})}")


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


def _policy_packs(root: Path) -> list[Path]:
    pack = root / "policies"
    return [pack] if (pack / "PulumiPolicy.yaml").is_file() else []
