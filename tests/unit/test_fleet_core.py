"""The fleet core without a cluster: selection and waves, the scheduler with fake per-stack runners,
the report's shape and what --resume selects."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cgkit.config.model import Wave
from cgkit.errors import ConfigError, ConfigIssue, StackLockedError, UnknownMunicipalityError
from cgkit.fleet import report
from cgkit.fleet.scheduler import Status, first_error_line, run_fleet
from cgkit.fleet.selection import SelectionError, Shard, WavePlan, in_shard, plan_waves, select_codes
from cgkit.gemeenten import all_gemeenten

ONBOARDED = ["GM0344", "GM0363", "GM0373", "GM0518", "GM0893", "GM1900"]


# --- selection ---------------------------------------------------------------------------------


def test_select_codes_defaults_to_every_onboarded_municipality() -> None:
    assert select_codes(ONBOARDED) == ONBOARDED


def test_select_codes_normalises_codes_and_keeps_ones_without_a_file() -> None:
    assert select_codes(ONBOARDED, ["gm0363", "GM0014"]) == ["GM0014", "GM0363"]


def test_select_codes_by_province() -> None:
    assert select_codes(ONBOARDED, province="noord-holland") == ["GM0363", "GM0373"]


def test_select_codes_refuses_unknown_province_and_empty_selection() -> None:
    with pytest.raises(UnknownMunicipalityError, match="Atlantis"):
        select_codes(ONBOARDED, province="Atlantis")
    with pytest.raises(SelectionError):
        select_codes(ONBOARDED, ["GM0014"], province="Utrecht")


def test_plan_waves_puts_canaries_first_and_the_rest_after() -> None:
    waves = [Wave(name="canary", municipalities=["GM0344", "GM0014"]),
             Wave(name="rest", municipalities="rest", max_failure_rate=0.1)]
    plans = plan_waves(waves, ONBOARDED)
    assert plans == [WavePlan("canary", ("GM0344",), 0.0),
                     WavePlan("rest", ("GM0363", "GM0373", "GM0518", "GM0893", "GM1900"), 0.1)]


def test_plan_waves_gives_unclaimed_codes_a_final_wave_and_selects_one_wave() -> None:
    waves = [Wave(name="canary", municipalities=["GM0518"])]
    assert [p.name for p in plan_waves(waves, ONBOARDED)] == ["canary", "rest"]
    assert plan_waves([], ONBOARDED) == [WavePlan("rest", tuple(ONBOARDED))]
    assert plan_waves(waves, ONBOARDED, only="canary") == [WavePlan("canary", ("GM0518",))]
    with pytest.raises(SelectionError, match="no wave 'pilot'"):
        plan_waves(waves, ONBOARDED, only="pilot")


# --- scheduler ---------------------------------------------------------------------------------


class Recorder:
    """A fake runner: records the peak number of concurrent calls; fails the codes in ``failing``."""

    def __init__(self, failing: dict[str, Exception] | None = None, gate: threading.Barrier | None = None):
        self.failing = failing or {}
        self.gate = gate
        self.active = 0
        self.peak = 0
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, code: str) -> dict[str, int]:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append(code)
        try:
            if self.gate:
                self.gate.wait(timeout=10)
            if code in self.failing:
                raise self.failing[code]
            return {"create": 2, "same": 5}
        finally:
            with self.lock:
                self.active -= 1


def one_wave(codes: list[str], rate: float = 1.0) -> list[WavePlan]:
    return [WavePlan("all", tuple(codes), rate)]


def test_parallelism_is_bounded_and_reached() -> None:
    # A barrier of 3 only opens when 3 calls run at once: with parallel=3 it must open each time.
    runner = Recorder(gate=threading.Barrier(3))
    run = run_fleet(one_wave(ONBOARDED), runner, parallel=3)
    assert run.ok and runner.peak == 3
    assert sorted(runner.calls) == ONBOARDED


def test_parallel_one_runs_stacks_one_at_a_time() -> None:
    runner = Recorder()
    run_fleet(one_wave(ONBOARDED), runner, parallel=1)
    assert runner.peak == 1


def test_a_failing_stack_is_recorded_and_the_others_complete() -> None:
    broken = ConfigError([ConfigIssue("environments/sandbox/municipalities/gm0363.yaml", 3, "domain", "bad")])
    runner = Recorder(failing={"GM0363": broken, "GM0518": RuntimeError("boom")})
    run = run_fleet(one_wave(ONBOARDED), runner, parallel=2)
    by_code = {r.code: r for r in run.results}
    assert by_code["GM0363"].status == Status.FAILED and by_code["GM0363"].error_kind == "invalid-config"
    assert by_code["GM0363"].error == "environments/sandbox/municipalities/gm0363.yaml:3: domain: bad"
    assert by_code["GM0518"].error_kind == "internal-error" and by_code["GM0518"].error == "boom"
    assert run.count(Status.SUCCEEDED) == 4 and not run.ok
    assert by_code["GM0344"].changes == {"create": 2, "same": 5} and by_code["GM0344"].changed


def test_a_wave_over_its_failure_budget_stops_the_rollout() -> None:
    plans = [WavePlan("canary", ("GM0344", "GM0363"), 0.0), WavePlan("rest", ("GM0373", "GM0518"), 0.5)]
    runner = Recorder(failing={"GM0363": StackLockedError("locked")})
    run = run_fleet(plans, runner, parallel=2)
    assert [r.status for r in run.results] == [Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.SKIPPED]
    assert run.waves[0].stopped and run.waves[0].failure_rate == 0.5
    assert sorted(runner.calls) == ["GM0344", "GM0363"]


def test_a_wave_within_its_failure_budget_goes_on() -> None:
    plans = [WavePlan("canary", ("GM0344", "GM0363", "GM0373", "GM0518"), 0.25), WavePlan("rest", ("GM0893",))]
    run = run_fleet(plans, Recorder(failing={"GM0363": RuntimeError("x")}), parallel=2)
    assert not run.waves[0].stopped
    assert [r.status for r in run.results].count(Status.SUCCEEDED) == 4


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt), also when the test run inherited SIGINT
    ignored (a run started in the background with `&`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_starts_nothing_new_and_lets_running_stacks_end(ctrl_c_raises: None) -> None:
    stop = threading.Event()

    def runner(code: str) -> dict[str, int]:
        if code != "GM0344":
            raise AssertionError(f"{code} started after the interrupt")
        time.sleep(0.2)  # let the main thread reach its wait for the workers: Ctrl-C lands there
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt in the main thread
        assert stop.wait(timeout=10), "the scheduler did not stop on the interrupt"
        time.sleep(0.5)  # the engine takes a moment to wind down; the scheduler must wait for it
        return {"update": 1}  # the running stack ends normally

    plans = [WavePlan("canary", ("GM0344", "GM0363")), WavePlan("rest", ("GM0373",))]
    run = run_fleet(plans, runner, parallel=1, stop=stop)
    assert run.interrupted
    assert [r.status for r in run.results] == [Status.SUCCEEDED, Status.NOT_STARTED, Status.NOT_STARTED]
    assert not any(w.stopped for w in run.waves)  # not a failure-budget stop


def test_parallel_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        run_fleet(one_wave(ONBOARDED), Recorder(), parallel=0)


def test_first_error_line_picks_the_specific_engine_line() -> None:
    engine_text = ("up of sandbox.gm0363 failed: Updating (sandbox.gm0363):\n"
                   "  kubernetes:core/v1:Namespace (gm0363):\n"
                   '    error: namespaces "gm0363" already exists\n'
                   "error: update failed")
    assert first_error_line(RuntimeError(engine_text)) == 'error: namespaces "gm0363" already exists'
    policy = "preview failed\n  [mandatory]  cgkit v0.1.0  CGK-POD-001 (Deployment: x)\nerror: preview failed"
    assert first_error_line(RuntimeError(policy)).startswith("[mandatory]  cgkit v0.1.0  CGK-POD-001")


# --- report and resume -------------------------------------------------------------------------


def test_report_shape_and_resume_selection(tmp_path: Path) -> None:
    plans = [WavePlan("canary", ("GM0344", "GM0363"), 0.0), WavePlan("rest", ("GM0373",))]
    run = run_fleet(plans, Recorder(failing={"GM0363": RuntimeError("boom")}), parallel=2)
    info, run_dir = report.new_run(tmp_path, "up", "sandbox", 2)
    path = report.write_report(run_dir, report.build_report(info, run, 1.5))
    written = json.loads(path.read_text())
    assert path == tmp_path / ".cgkit" / "runs" / info.run_id / "report.json"
    assert {"version", "run_id", "verb", "env", "started_at", "duration_s", "parallel", "resumed_from",
            "interrupted", "options", "totals", "waves", "stacks"} <= set(written)
    assert written["totals"] == {"succeeded": 1, "failed": 1, "skipped": 1, "not-started": 0}
    assert written["waves"][0] == {"name": "canary", "stacks": ["GM0344", "GM0363"], "max_failure_rate": 0.0,
                                   "failed": 1, "failure_rate": 0.5, "stopped": True}
    stack = written["stacks"][1]
    assert stack["stack"] == "sandbox.gm0363" and stack["log"] == "sandbox.gm0363.log"
    assert stack["status"] == "failed" and stack["error"] == "boom"
    loaded = report.load_report(tmp_path, info.run_id)
    assert loaded == written == report.load_report(tmp_path, str(run_dir))
    assert report.unfinished_codes(loaded) == ["GM0363", "GM0373"]


def test_load_report_names_the_recent_runs_when_the_run_is_unknown(tmp_path: Path) -> None:
    info, run_dir = report.new_run(tmp_path, "preview", "sandbox", 1)
    report.write_report(run_dir, {"stacks": []})
    with pytest.raises(report.RunNotFoundError) as missing:
        report.load_report(tmp_path, "nope")
    assert info.run_id in missing.value.hint


def test_engine_failure_message_keeps_the_engine_reasons_not_the_traceback() -> None:
    from cgkit.engine import _why

    output = "\n".join([
        " +  kubernetes:core/v1:Namespace gm0106-namespace creating (0s) Retry #0; creation failed: conflict",
        ' +  kubernetes:core/v1:Namespace gm0106-namespace **creating failed** error: resource "x" was not '
        "successfully created: Server-Side Apply field conflict detected.",
        " +  pulumi:pulumi:Stack cgkit-sandbox.gm0106 creating (0s) error: update failed",
        "    grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with:",
        "    pulumi.errors.RunError: Resource monitor has terminated, shutting down",
        "Diagnostics:",
        '    error: resource "x" was not successfully created: Server-Side Apply field conflict detected.',
        "    error: update failed",
    ])
    assert _why(output) == 'error: resource "x" was not successfully created: Server-Side Apply field conflict detected.'
    assert _why("a\nb\nc", count=2) == "b\nc"


def test_an_engine_killed_by_a_signal_releases_the_lock_it_left() -> None:
    from pulumi import automation as auto

    from cgkit import engine
    from cgkit.errors import EngineInterruptedError

    class Stack:
        name = "sandbox.gm0014"
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def killed():
        raise auto.CommandError(auto._cmd.CommandResult("Destroying (sandbox.gm0014):", "", -2))

    stack = Stack()
    with pytest.raises(EngineInterruptedError, match="signal 2 .* released the stack lock"):
        engine._run(killed, stack, "destroy")
    assert stack.cancelled
    assert engine._killing_signal("\n code: 255\n stdout: x") is None


def test_a_destroy_the_engine_called_done_with_resources_left_is_a_failure() -> None:
    # Ctrl-C as a destroy began: the engine exited 0, deleted nothing and said it had (real node)
    from types import SimpleNamespace

    from cgkit import engine
    from cgkit.errors import EngineError

    class Stack:
        name = "sandbox.gm0014"

        def __init__(self, left: list[dict]):
            self.left = left

        def destroy(self, **_kwargs):
            return "done"

        def export_stack(self):
            return SimpleNamespace(deployment={"resources": self.left})

    with pytest.raises(EngineError, match="ended with 2 resource.s. still in its state"):
        engine.destroy(Stack([{"urn": "a"}, {"urn": "b"}]), engine.Operation(on_output=lambda _line: None))
    assert engine.destroy(Stack([]), engine.Operation(on_output=lambda _line: None)) == "done"


def test_engine_failures_are_told_apart() -> None:
    from pulumi import automation as auto

    from cgkit import engine
    from cgkit.errors import EngineError, PolicyViolationError

    def failing(stdout: str):
        def call():
            raise auto.CommandError(auto._cmd.CommandResult(stdout, "error: update failed", 255))
        return call

    stack = type("Stack", (), {"name": "sandbox.gm0014"})()
    violation = "    [mandatory]  cgkit v0.1.0  CGK-POD-001 (Deployment: web)\n        privileged container"
    with pytest.raises(PolicyViolationError, match="CGK-POD-001"):
        engine._run(failing(violation), stack, "up")
    exempted = "    [exempted: w1] [mandatory]  cgkit v0.1.0  CGK-POD-001\nerror: resource x failed"
    with pytest.raises(EngineError, match="error: resource x failed") as plain:
        engine._run(failing(exempted), stack, "up")
    assert type(plain.value) is EngineError


def test_capacity_checks_from_several_fleet_workers_at_once_all_finish(project_root: Path) -> None:
    # open_stack renders each tenant under mocks; Pulumi's runtime is per process, so fleet workers
    # rendering at once used to hang (and race pulumi_kubernetes' lazy imports).
    from cgkit import capacity
    from cgkit.config import loader

    configs = [_with_replicas(loader.load_municipality(project_root, "sandbox", code))
               for code in ("GM0344", "GM0363", "GM0373")]  # only files that set replicas are rendered
    done: dict[str, list] = {}
    workers = [threading.Thread(target=lambda c=c: done.__setitem__(c.code, capacity.capacity_issues(project_root, c)))
               for c in configs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(done) == ["GM0344", "GM0363", "GM0373"] and not any(done.values())


def _with_replicas(cfg):
    return cfg.model_copy(update={"apps": {name: app.model_copy(update={"replicas": 1}) for name, app in cfg.apps.items()}})


def test_a_file_that_sets_no_replicas_is_not_rendered(project_root: Path, monkeypatch) -> None:
    from cgkit import capacity, render
    from cgkit.config import loader

    cfg = loader.load_municipality(project_root, "sandbox", "GM0363")
    assert all(app.replicas is None for app in cfg.apps.values())
    monkeypatch.setattr(render, "render_municipality", lambda _cfg: pytest.fail("rendered"))
    assert capacity.capacity_issues(project_root, cfg) == []
    with pytest.raises(pytest.fail.Exception, match="rendered"):
        capacity.capacity_issues(project_root, _with_replicas(cfg))


def test_shards_partition_every_code_once_and_nobody_moves_when_a_municipality_is_added() -> None:
    codes = sorted(all_gemeenten())
    for count in (1, 2, 3, 7, 64):
        parts = [{c for c in codes if Shard(k, count).holds(c)} for k in range(1, count + 1)]
        assert sum(len(p) for p in parts) == len(codes) and set().union(*parts) == set(codes)
    before = {c: next(k for k in range(1, 5) if Shard(k, 4).holds(c)) for c in codes[:-1]}
    after = {c: next(k for k in range(1, 5) if Shard(k, 4).holds(c)) for c in codes}  # one more onboarded
    assert {c: after[c] for c in before} == before


def test_a_shard_keeps_the_waves_and_drops_the_ones_left_empty() -> None:
    plans = [WavePlan("canary", ("GM0344",), 0.0), WavePlan("rest", tuple(sorted(all_gemeenten())), 0.1)]
    halves = [in_shard(plans, Shard(k, 2)) for k in (1, 2)]
    assert sorted(c for h in halves for p in h for c in p.codes) == sorted(c for p in plans for c in p.codes)
    assert [[p.name for p in h] for h in halves] in (
        [["canary", "rest"], ["rest"]], [["rest"], ["canary", "rest"]])
    assert all(p.max_failure_rate == 0.1 for h in halves for p in h if p.name == "rest")
