"""Stack commands: ``preview``, ``up``, ``refresh``, ``destroy`` of one stack of an environment, on
top of the stack operations API (cgkit/stackops.py).

``cgkit up --env sandbox GM0344`` validates the municipality's config (nothing runs if it is
invalid), selects stack ``sandbox.gm0344``, generates its missing secrets, and runs the engine.
Like ``pulumi up``, ``up`` and ``destroy`` show what will change and ask on a terminal; ``--yes``
skips the question, and without a terminal they proceed only with ``--yes``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from cgkit import engine, upgrade
from cgkit.cli.console import engine_line, err, out
from cgkit.config import loader
from cgkit.conventions import stack_name
from cgkit.errors import CgkitError, InvalidArgumentError
from cgkit.project import find_root
from cgkit.stackops import RunOptions, StackNotDeployed, Verb, engine_settings, load_target, open_stack, run

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


class ConfirmationNeeded(CgkitError):
    """A changing operation was asked for without a terminal to confirm it on and without --yes."""

    reference = "confirmation-needed"


def shell_env(env: Env = "sandbox") -> None:
    """Print `export` lines that let plain `pulumi` use cgkit's engine setup (eval "$(cgkit env)")."""
    root = find_root()
    environment = loader.load_environment(root, env)
    settings = engine_settings(root, environment, probe=False)
    for key, value in sorted(engine.engine_env(settings).items()):
        if key == "PULUMI_CONFIG_PASSPHRASE":  # a secret: it is already in the caller's environment
            continue
        if key == "PULUMI_BACKEND_URL" and os.environ.get(key):  # the caller's own, maybe with a password
            continue
        out.print(f"export {key}={shlex.quote(value)}", markup=False, highlight=False, soft_wrap=True)


def preview(target: Target, env: Env, skip_policy: NoPolicy = False, no_refresh: NoRefresh = False) -> None:
    """Show what `up` would change (live objects read back first), with the policy pack applied."""
    settings, stack = open_stack(env, target, Verb.PREVIEW, notify=err.print)
    outcome = run(Verb.PREVIEW, stack, settings, engine_line, RunOptions(skip_policy=skip_policy, refresh=not no_refresh))
    out.print(f"preview of {stack.name}: {_summary(outcome.changes, done=False)}{_drift(outcome, no_refresh)}",
              highlight=False, soft_wrap=True)


def up(target: Target, env: Env, yes: Yes = False, skip_policy: NoPolicy = False, no_refresh: NoRefresh = False,
       allow_data_loss: AllowDataLoss = None) -> None:
    """Create or update the stack's resources, after showing what will change.

    First the live objects are read back (refresh), so whatever changed or went by hand is put back.
    A change that would delete or replace what holds records stops at the preview, unless
    ``--allow-data-loss CODE`` says it is meant. A tenant moving to another catalog release is
    backed up first (when cgkit backs it up); one on a newer release than the checkout's is refused.
    """
    _, cfg = load_target(find_root(), env, target)  # a bad target or config is named before any question
    allowed = _data_loss_allowed(target, allow_data_loss)
    check_can_confirm(yes, "update")
    settings, stack = open_stack(env, target, Verb.UP, notify=err.print)
    hop = upgrade.pending_hop(stack) if cfg is not None else None  # a downgrade stops here
    options = RunOptions(skip_policy=skip_policy, refresh=not no_refresh)
    with engine.unprotected(stack, engine.protected_resources(stack) if allowed else ()):
        confirm(yes, "update", lambda: run(Verb.PREVIEW, stack, settings, engine_line, options))
        if cfg is not None:
            upgrade.backup_before_upgrade(cfg, hop, lambda line: err.print(line, highlight=False, soft_wrap=True))
        outcome = run(Verb.UP, stack, settings, engine_line, options)
    out.print(f"up of {stack.name}: {_summary(outcome.changes)}{_drift(outcome, no_refresh)}", highlight=False,
              soft_wrap=True)
    for name, value in sorted(outcome.outputs.items()):
        _print_output(name, "[secret]" if value.secret else value.value)


def refresh(target: Target, env: Env, preview_only: Annotated[bool, typer.Option(
        "--preview-only", help="Only show drift; do not write state.")] = False) -> None:
    """Read the live objects back into the stack's state (or only show the drift)."""
    settings, stack = open_stack(env, target, Verb.REFRESH, notify=err.print)
    outcome = run(Verb.REFRESH, stack, settings, engine_line, RunOptions(preview_only=preview_only))
    if preview_only:
        out.print(f"drift of {stack.name}: {_summary(outcome.changes, done=False)}")
        return
    out.print(f"refresh of {stack.name}: {_summary(outcome.changes)}")


def destroy(target: Target, env: Env, yes: Yes = False, allow_data_loss: AllowDataLoss = None) -> None:
    """Delete every resource of the stack, after showing what will go. A tenant holds records (its
    databases, media): destroying it needs ``--allow-data-loss CODE``."""
    load_target(find_root(), env, target, runs_program=False)  # a bad target is named before any question
    allowed = _data_loss_allowed(target, allow_data_loss)
    check_can_confirm(yes, "destroy")
    try:
        settings, stack = open_stack(env, target, Verb.DESTROY, notify=err.print)
    except StackNotDeployed:
        out.print(f"stack {stack_name(env, target)} does not exist: nothing to destroy")
        return
    if target.lower() == "platform":
        tenants = engine.stacks_with_resources(settings, f"{env}.gm")
        if tenants:
            raise TenantsRemain(f"refusing to destroy {stack.name}: {len(tenants)} tenant stack(s) still use it "
                                f"({', '.join(tenants[:5])}{', ...' if len(tenants) > 5 else ''})",
                                hint=f"destroy them first: cgkit destroy --env {env} <code> (or cgkit fleet destroy)")
    engine.data_held(stack, allowed)  # refused before the question, not after it
    confirm(yes, "destroy", lambda: out.print(f"this deletes every resource of stack {stack.name}"))
    outcome = run(Verb.DESTROY, stack, settings, engine_line, RunOptions(allow_data_loss=allowed))
    out.print(f"destroy of {stack.name}: {_summary(outcome.changes)}")


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


def check_can_confirm(yes: bool, verb: str) -> None:
    """Refuse, before anything runs, a changing operation that could not be confirmed.

    Raises:
        ConfirmationNeeded: not ``yes`` and stdin is no terminal to ask on.
    """
    if not yes and not sys.stdin.isatty():
        raise ConfirmationNeeded(f"refusing to {verb} without confirmation: no terminal to ask on",
                                 hint="pass --yes to proceed")


def confirm(yes: bool, verb: str, show: Callable[[], object]) -> None:
    """Return when a changing ``verb`` may go ahead: ``yes``, or the user agreed on a terminal after ``show()``.

    Raises:
        ConfirmationNeeded: no terminal to ask on and not ``yes``.
        typer.Exit: the user declined (exit status 1).
    """
    check_can_confirm(yes, verb)
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
