"""What a fleet run shows: a live progress line while it runs, a line per finished stack, and the
summary table at the end (rich Progress and Table)."""

from __future__ import annotations

import threading
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cgkit.conventions import stack_name
from cgkit.engine import DRIFT_KEYS
from cgkit.fleet.scheduler import FleetRun, StackResult, Status

_STYLE = {Status.SUCCEEDED: "green", Status.FAILED: "red", Status.SKIPPED: "yellow", Status.NOT_STARTED: "yellow"}
_ENDED = {Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.NOT_STARTED}


class LiveView:
    """The live progress of a run on ``console``: done / running / failed / to go, elapsed, ETA.

    Use as a context manager around ``run_fleet`` and pass ``update`` as its ``on_update``; it is
    safe to call from the worker threads.
    """

    def __init__(self, console: Console, verb: str, env: str, total: int):
        self.console, self.verb, self.env = console, verb, env
        self.states: dict[str, Status] = {}
        self.lock = threading.Lock()
        self.progress = Progress(
            SpinnerColumn(), TextColumn(f"fleet {escape(verb)}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("running {task.fields[running]} · failed {task.fields[failed]} · to go {task.fields[to_go]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.task = self.progress.add_task(verb, total=total, running=0, failed=0, to_go=total)
        self.total = total

    def __enter__(self) -> "LiveView":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, result: StackResult) -> None:
        """Record ``result``'s new status; print a line when it ended."""
        with self.lock:
            self.states[result.code] = result.status
            counts = Counter(self.states.values())
            done = sum(counts[s] for s in _ENDED)
            self.progress.update(self.task, completed=done, running=counts[Status.RUNNING],
                                 failed=counts[Status.FAILED], to_go=self.total - done - counts[Status.RUNNING])
            if result.status in (Status.SUCCEEDED, Status.FAILED):
                self.progress.console.print(_finished_line(self.env, result), highlight=False)


def _finished_line(env: str, result: StackResult) -> str:
    name = escape(stack_name(env, result.code))
    if result.status == Status.FAILED:
        return f"[red]✗[/] {name} failed after {result.duration_s:.1f}s: {escape(result.error or '')}"
    drift = drift_text(result.changes)
    found = f", refresh found {drift}" if drift else ""
    return f"[green]✓[/] {name} {escape(change_text(result.changes))} ({result.duration_s:.1f}s{found})"


def change_counts(changes: dict[str, int]) -> tuple[int, int, int]:
    """Return (creates, updates, deletes) of an engine change summary; replacements count as updates."""
    return (changes.get("create", 0), changes.get("update", 0) + changes.get("replace", 0),
            changes.get("delete", 0))


def change_text(changes: dict[str, int]) -> str:
    """Return ``+2 ~1 -0`` for creates, updates, deletes, or ``no changes``."""
    creates, updates, deletes = change_counts(changes)
    return f"+{creates} ~{updates} -{deletes}" if creates or updates or deletes else "no changes"


def drift_text(changes: dict[str, int]) -> str:
    """Return what a refresh before the operation found (``1 drifted, 2 gone``), or "" for nothing."""
    drifted, gone = (changes.get(key, 0) for key in DRIFT_KEYS)
    return ", ".join(f"{count} {word}" for count, word in ((drifted, "drifted"), (gone, "gone")) if count)


def summary_table(run: FleetRun, env: str, verb: str) -> Table:
    """Return the table of every stack: result, creates/updates/deletes, what the refresh found,
    duration, first error line."""
    table = Table(title=f"fleet {verb} of {env}: {run.count(Status.SUCCEEDED)} succeeded, "
                  f"{run.count(Status.FAILED)} failed, {run.count(Status.SKIPPED)} skipped, "
                  f"{run.count(Status.NOT_STARTED)} not started", title_justify="left")
    for column, justify in (("stack", "left"), ("wave", "left"), ("result", "left"), ("create", "right"),
                            ("update", "right"), ("delete", "right"), ("drift", "left"), ("time", "right"),
                            ("error", "left")):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "error")
    for result in run.results:
        creates, updates, deletes = change_counts(result.changes)
        table.add_row(stack_name(env, result.code), result.wave,
                      f"[{_STYLE.get(result.status, 'white')}]{result.status.value}[/]",
                      str(creates), str(updates), str(deletes), drift_text(result.changes),
                      f"{result.duration_s:.1f}s",
                      escape(result.error or ""))
    return table
