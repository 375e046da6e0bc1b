"""The per-stack operation of a fleet run through the Automation API (``scheduler.StackRunner``).

Each call opens the stack exactly as the single-stack commands do (``stack_cmds.open_stack``:
config validated and the cluster probed before any engine call, per-stack policy pack config,
stack opened for the verb (preview and up create a new one and its secrets, under a lock; refresh
and destroy never create one); for destroy, a municipality whose file is gone is destroyed from its
state), runs the verb, and writes the engine's output to the stack's log in the run directory.
Secrets never reach the log: up, refresh and destroy run without show-secrets, and preview never
shows secret values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cgkit import engine
from cgkit.cli.stack_cmds import PREVIEW_CREATED, StackNotDeployed, open_stack
from cgkit.errors import CgkitError
from cgkit.fleet import report
from cgkit.fleet.scheduler import StackRunner

VERBS = ("preview", "up", "refresh", "destroy")
#: The key a preview adds to a stack's changes when it had to create the stack (never deployed).
STACK_CREATED = "stack-created"


@dataclass(frozen=True)
class RunOptions:
    """The flags of a fleet run: ``preview_only`` (refresh: only show drift), ``skip_policy``
    (preview/up without the policy pack), ``refresh`` (preview/up read the live objects back first),
    ``allow_data_loss`` (destroy deletes what holds records: the tenants' namespaces, databases, media)."""

    preview_only: bool = False
    skip_policy: bool = False
    refresh: bool = True
    allow_data_loss: bool = False


def stack_runner(verb: str, env: str, run_dir: Path, options: RunOptions = RunOptions()) -> StackRunner:
    """Return the runner for ``verb`` over stacks of ``env`` that logs into ``run_dir``.

    The runner takes a CBS code, returns the engine's change counts (op -> count; for preview and up
    with ``options.refresh`` also what the refresh found, ``engine.DRIFT_KEYS``) and raises ConfigError
    (invalid config, nothing ran), ClusterUnreachableError, StackNotDeployed (refresh of a stack never
    deployed), PolicyViolationError, StackLockedError or EngineError. Destroying a stack that does not
    exist succeeds with no changes. A preview that had to create the stack (never deployed; the
    program needs its secrets) adds ``STACK_CREATED: 1``.

    Raises:
        ValueError: ``verb`` is not one of VERBS.
    """
    if verb not in VERBS:
        raise ValueError(f"unknown fleet verb {verb!r}; one of {', '.join(VERBS)}")

    def run(code: str) -> dict[str, int]:
        with report.log_file(run_dir, env, code).open("w", encoding="utf-8") as log:
            write = _line_writer(log)
            notes: list[str] = []

            def note(line: str) -> None:
                notes.append(line)
                write(line)

            try:
                settings, stack = open_stack(env, code, verb, notify=note)
                changes = _operate(verb, stack, settings, engine.Operation(
                    on_output=write, policies=not options.skip_policy, refresh=options.refresh), options)
                created = any(PREVIEW_CREATED in note for note in notes)
                return {**changes, STACK_CREATED: 1} if created else changes
            except StackNotDeployed as absent:
                if verb != "destroy":
                    write(absent.render())
                    raise
                write(f"{absent}: nothing to destroy")
                return {}
            except CgkitError as error:
                write(error.render())
                raise

    return run


def _operate(verb: str, stack, settings: engine.EngineSettings, op: engine.Operation,
             options: RunOptions) -> dict[str, int]:
    if verb in ("preview", "up"):
        outcome = (engine.preview if verb == "preview" else engine.up)(stack, settings, op)
        if op.refresh:
            op.on_output(outcome.drift.text(limit=50))
        return {**outcome.changes, **outcome.drift.counts()}
    if verb == "refresh" and options.preview_only:
        return engine.preview_refresh(stack, op).change_summary or {}
    if verb == "refresh":
        return engine.refresh(stack, op).summary.resource_changes or {}
    held = engine.data_held(stack, options.allow_data_loss)
    return engine.destroy(stack, op, held).summary.resource_changes or {}


def _line_writer(log: TextIO):
    def write(line: str) -> None:
        log.write(line if line.endswith("\n") else line + "\n")
        log.flush()

    return write
