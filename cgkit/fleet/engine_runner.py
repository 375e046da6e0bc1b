"""The per-stack operation of a fleet run through the Automation API (``scheduler.StackRunner``).

Each call opens the stack exactly as the single-stack commands do (``stackops.open_stack``:
config validated and the cluster probed before any engine call, per-stack policy pack config,
stack opened for the verb (preview and up create a new one and its secrets, under a lock; refresh
and destroy never create one); for up, a downgrade refused and a backed-up tenant backed up when
its release changes (cgkit.upgrade); for destroy, a municipality whose file is gone is destroyed from its
state), runs the verb, and writes the engine's output to the stack's log in the run directory.
Secrets never reach the log: up, refresh and destroy run without show-secrets, and preview never
shows secret values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cgkit import upgrade
from cgkit.config import loader
from cgkit.engine import Outcome
from cgkit.errors import CgkitError
from cgkit.fleet import report
from cgkit.fleet.scheduler import StackRunner
from cgkit.project import find_root
from cgkit.stackops import PREVIEW_CREATED, RunOptions, StackNotDeployed, Verb, open_stack, run

VERBS = tuple(v.value for v in Verb)
#: The key a preview adds to a stack's changes when it had to create the stack (never deployed).
STACK_CREATED = "stack-created"


def stack_runner(verb: str, env: str, run_dir: Path, options: RunOptions = RunOptions(),
                 create: bool = True) -> StackRunner:
    """Return the runner for ``verb`` over stacks of ``env`` that logs into ``run_dir``; without
    ``create`` (a runner pod) it never creates a stack or a secret (``stackops.open_stack``).

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
    action = Verb(verb)

    def run_stack(code: str) -> dict[str, int]:
        with report.log_file(run_dir, env, code).open("w", encoding="utf-8") as log:
            write = _line_writer(log)
            notes: list[str] = []

            def note(line: str) -> None:
                notes.append(line)
                write(line)

            try:
                settings, stack = open_stack(env, code, action, notify=note, create=create)
                if action is Verb.UP:
                    _before_upgrade(env, code, stack, write)
                changes = _changes(action, run(action, stack, settings, write, options), write, options)
                created = any(PREVIEW_CREATED in note for note in notes)
                return {**changes, STACK_CREATED: 1} if created else changes
            except StackNotDeployed as absent:
                if action is not Verb.DESTROY:
                    write(absent.render())
                    raise
                write(f"{absent}: nothing to destroy")
                return {}
            except CgkitError as error:
                write(error.render())
                raise

    return run_stack


def _before_upgrade(env: str, code: str, stack, write: Callable[[str], None]) -> None:
    """Refuse a downgrade; back the tenant up when this ``up`` changes its release (cgkit.upgrade)."""
    hop = upgrade.pending_hop(stack)
    upgrade.backup_before_upgrade(loader.load_municipality(find_root(), env, code), hop, write)


def _changes(verb: Verb, outcome: Outcome, write: Callable[[str], None], options: RunOptions) -> dict[str, int]:
    """A stack's change counts for the report: the engine's, plus (preview/up with refresh) what the
    refresh found, which also goes to the log."""
    if verb.runs_program and options.refresh:
        write(outcome.drift.text(limit=50))
        return {**outcome.changes, **outcome.drift.counts()}
    return outcome.changes


def _line_writer(log: TextIO):
    def write(line: str) -> None:
        log.write(line if line.endswith("\n") else line + "\n")
        log.flush()

    return write
