"""Run one operation over the stacks of a fleet: waves in order, a bounded worker pool inside each.

The per-stack operation is injected (``StackRunner``): the CLI passes the engine runner
(``engine_runner.stack_runner``), tests pass fakes. The scheduler's promises:

* at most ``parallel`` stacks run at once (threads; each stack's engine is its own process);
* a stack whose runner raises is recorded as ``failed`` (error kind and first line) and the others go on;
* after each wave, when its share of failed stacks exceeds the wave's ``max_failure_rate``, no
  further wave starts; their stacks are recorded as ``skipped``;
* on KeyboardInterrupt (Ctrl-C) no new stack starts (``not-started``) and the running ones end
  as the engine ends them: Ctrl-C on a terminal reaches the engine processes too, and Pulumi then
  cancels gracefully (finishes in-flight operations, saves state, releases the stack's lock); the
  scheduler waits for them and records how each ended.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum

from cgkit.errors import ConfigError
from cgkit.fleet.selection import WavePlan


class Status(StrEnum):
    """Where one stack stands at the end of a run."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  #: an earlier wave exceeded its failure budget
    NOT_STARTED = "not-started"  #: the run was interrupted before this stack began
    PENDING = "pending"  #: still queued (only seen while the run goes on)
    RUNNING = "running"  #: in the engine (only seen while the run goes on)


#: The statuses a ``--resume`` reruns: everything that did not end in success.
UNFINISHED = frozenset({Status.FAILED, Status.SKIPPED, Status.NOT_STARTED, Status.PENDING, Status.RUNNING})

#: The per-stack operation: takes a CBS code, returns the engine's change counts (op -> count, e.g.
#: ``{"create": 3, "same": 10}``); raises to fail that stack (CgkitError subclasses carry ``reference``).
StackRunner = Callable[[str], dict[str, int]]


@dataclass
class StackResult:
    """One stack's record in a run.

    Attributes:
        code: CBS code, upper case. wave: the wave it ran in.
        status: see ``Status``. changes: op -> count from the engine (empty unless it ran).
        duration_s: wall time in the runner, seconds (0.0 if it never started).
        error: the first line of the error (None on success). error_kind: the error's ``reference``
            (``invalid-config``, ``policy-violation``, ``stack-locked``, ``engine-failed``, ...), or
            ``cancelled`` when it failed after the run was interrupted.
        started_at: ISO-8601 UTC time it started, or None.
    """

    code: str
    wave: str
    status: Status = Status.PENDING
    changes: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None
    started_at: str | None = None

    @property
    def changed(self) -> bool:
        """True when the engine reported any operation other than ``same`` (for refresh: drift)."""
        return any(count for op, count in self.changes.items() if op != "same")


@dataclass
class WaveOutcome:
    """A wave after it ran: its plan, the failed count and whether the rollout stopped after it."""

    plan: WavePlan
    failed: int = 0
    stopped: bool = False

    @property
    def failure_rate(self) -> float:
        """Failed stacks / stacks in the wave (0.0 for an empty wave)."""
        return self.failed / len(self.plan.codes) if self.plan.codes else 0.0


@dataclass
class FleetRun:
    """The whole run: every stack's result in plan order, the waves, and how it ended."""

    results: list[StackResult]
    waves: list[WaveOutcome]
    interrupted: bool = False

    def count(self, status: Status) -> int:
        """How many stacks have ``status``."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        """True when every stack succeeded."""
        return all(r.status == Status.SUCCEEDED for r in self.results)


#: Called with a stack's result each time it starts or ends (from worker threads; keep it quick).
OnUpdate = Callable[[StackResult], object]


#: Runs one wave's stacks to their end, setting each result's status and calling ``on_update`` as
#: they start and end; on KeyboardInterrupt it sets the Event, lets the running ones end and returns.
WaveRunner = Callable[[list[StackResult], OnUpdate, threading.Event], None]


def run_fleet(plans: list[WavePlan], runner: StackRunner, parallel: int = 1,
              on_update: OnUpdate = lambda result: None, stop: threading.Event | None = None) -> FleetRun:
    """Run ``runner`` on every code of ``plans``, wave after wave, at most ``parallel`` at a time
    (``run_waves`` with ``thread_pool``).

    Raises:
        ValueError: ``parallel`` is below 1.
    """
    return run_waves(plans, thread_pool(runner, parallel), on_update, stop)


def run_waves(plans: list[WavePlan], run_wave: WaveRunner, on_update: OnUpdate = lambda result: None,
              stop: threading.Event | None = None) -> FleetRun:
    """Run every wave of ``plans`` in order with ``run_wave`` (this machine's threads, or the
    cluster's Jobs: cgkit/fleet/in_cluster.py), judging each wave's failure budget in between.

    Returns the FleetRun (never raises for a stack's failure). A KeyboardInterrupt while waiting ends
    the run as described in the module doc, sets ``stop`` (if given, else an internal Event) and
    ``interrupted``.
    """
    run = FleetRun([StackResult(code, plan.name) for plan in plans for code in plan.codes],
                   [WaveOutcome(plan) for plan in plans])
    stop = stop or threading.Event()
    try:
        _run_waves(run, run_wave, on_update, stop)
    except KeyboardInterrupt:  # between waves; inside one, the wave runner handles it
        stop.set()
    run.interrupted = stop.is_set()
    for result in run.results:
        if result.status == Status.PENDING:
            result.status = Status.NOT_STARTED if run.interrupted else Status.SKIPPED
            on_update(result)
    return run


def _run_waves(run: FleetRun, run_wave: WaveRunner, on_update: OnUpdate, stop: threading.Event) -> None:
    """Run the waves in order; stop after an interrupt or a wave over its failure budget."""
    for index, wave in enumerate(run.waves):
        members = [r for r in run.results if r.wave == wave.plan.name]
        run_wave(members, on_update, stop)
        wave.failed = sum(1 for r in members if r.status == Status.FAILED)
        if stop.is_set():
            return
        if wave.failure_rate > wave.plan.max_failure_rate:
            wave.stopped = index + 1 < len(run.waves)
            return


def thread_pool(runner: StackRunner, parallel: int) -> WaveRunner:
    """The wave runner of this machine: ``parallel`` worker threads calling ``runner`` per stack.

    Raises:
        ValueError: ``parallel`` is below 1.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}")

    def run_wave(results: list[StackResult], on_update: OnUpdate, stop: threading.Event) -> None:
        _run_wave(results, runner, parallel, on_update, stop)

    return run_wave


def _run_wave(results: list[StackResult], runner: StackRunner, parallel: int, on_update: OnUpdate,
              stop: threading.Event) -> None:
    """Run one wave's stacks on ``parallel`` worker threads that take stacks from a shared queue; on
    KeyboardInterrupt set ``stop`` and wait for the running ones.

    Plain threads, each setting its own ``done`` Event when it ends, rather than ThreadPoolExecutor
    or Thread.join: a Ctrl-C inside ``submit`` can leave an executor's worker unjoined, and on
    Python 3.11 a Ctrl-C inside ``join()`` marks the still running thread as stopped (bpo-45274),
    so a later join returns at once.
    """
    queue = collections.deque(results)
    workers = [_Worker(queue, runner, on_update, stop) for _ in range(min(parallel, len(results)))]
    try:
        for worker in workers:
            worker.start()
        _wait(workers)
    except KeyboardInterrupt:
        stop.set()
        _wait(workers, interruptible=False)


class _Worker(threading.Thread):
    """Takes stacks from ``queue`` until it is empty; sets ``done`` when it ends."""

    def __init__(self, queue: collections.deque, runner: StackRunner, on_update: OnUpdate, stop: threading.Event):
        super().__init__(name="fleet-worker")
        self.queue, self.runner, self.on_update, self.stop = queue, runner, on_update, stop
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while True:
                try:
                    result = self.queue.popleft()
                except IndexError:
                    return
                _run_one(result, self.runner, self.on_update, self.stop)
        finally:
            self.done.set()


def _wait(workers: list[_Worker], interruptible: bool = True) -> None:
    """Wait until every started worker is done. Not ``interruptible``: a further Ctrl-C only repeats
    the wait (the engine processes handle a second Ctrl-C themselves)."""
    for worker in workers:
        while worker.ident is not None and not worker.done.is_set():
            try:
                worker.done.wait()
            except KeyboardInterrupt:
                if interruptible:
                    raise


def _run_one(result: StackResult, runner: StackRunner, on_update: OnUpdate, stop: threading.Event) -> None:
    if stop.is_set():
        result.status = Status.NOT_STARTED
        on_update(result)
        return
    result.status = Status.RUNNING
    result.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    on_update(result)
    start = time.monotonic()
    try:
        result.changes = dict(runner(result.code))
        result.status = Status.SUCCEEDED
    except Exception as error:  # noqa: BLE001 - isolation: any failure is this stack's, not the run's
        result.status = Status.FAILED
        # after Ctrl-C the engine cancels what runs: that failure is the interrupt, not the stack
        result.error_kind = "cancelled" if stop.is_set() else getattr(error, "reference", "internal-error")
        result.error = first_error_line(error)
    finally:
        result.duration_s = round(time.monotonic() - start, 3)
    on_update(result)


def first_error_line(error: BaseException) -> str:
    """Return the line of ``error`` that says what went wrong.

    Engine errors carry the engine's reasons (``engine._why``): the first ``[mandatory]`` policy line
    wins, then the first line with ``error:``. Config errors render as ``file:line: field: message``
    lines, the first of which is returned.
    """
    text = error.render() if isinstance(error, ConfigError) else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    policy = [line for line in lines if "[mandatory]" in line]
    flagged = [line for line in lines if "error:" in line]
    for candidates in (policy, flagged, lines):
        if candidates:
            return candidates[0]
    return type(error).__name__
