"""`cgkit fleet` with the real engine on the sandbox: a small fleet with one broken config and one
engine failure, --resume, convergence, two runs on one stack at once, drift, destroy.

The fleet lives in the session's scratch project (the `deployed` fixture provides the platform
stack the tenants refer to). Each tenant runs objecttypen alone (tests/integration/small_fleet.py)
so the whole file stays within a few minutes. Tests run in file order; the module fixture destroys
every fleet stack at the end, also when a test failed, and removes the stacks and their files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cgkit.stackops import open_stack
from cgkit.config.loader import environment_file
from cgkit.fleet import report
from tests.deadlines import GONE_S, finish, seconds
from tests.integration.conftest import ENV, ROOT, cgkit
from tests.integration.small_fleet import forget_tenants, make_small_fleet

pytestmark = pytest.mark.integration

FLEET = ["GM0014", "GM0080", "GM0106", "GM0153", "GM0200", "GM0202"]
BROKEN_CONFIG = "GM0080"  # size: XXL, a config error: nothing of it reaches the engine
#: Its namespace exists already, made by hand with a weaker Pod Security level. The engine's
#: server-side apply does not take over a field another manager set differently: a conflict.
UNMANAGED = "GM0106"
RACED = "GM0228"  # two fleet runs at once on this stack
DRIFTED = "GM0014"


def fleet(*args: str) -> int:
    """Run `cgkit fleet ARGS --env sandbox` in-process; return the exit status."""
    return cgkit("fleet", *args, "--env", ENV)


def latest_report(project: Path) -> dict:
    """The report written last (a run writes it when it ends)."""
    written = sorted(report.runs_dir(project).glob(f"*/{report.REPORT_FILE}"), key=lambda p: p.stat().st_mtime)
    return json.loads(written[-1].read_text())


def by_code(rep: dict) -> dict[str, dict]:
    return {s["code"]: s for s in rep["stacks"]}


def wait_until_gone(read, timeout_s: float = GONE_S) -> None:
    """Poll ``read()`` until it raises 404 (the object is gone); fail after ``timeout_s`` with the
    object's status conditions (a namespace's name the content or finalizer that holds it).

    Generous: the namespace controller empties a namespace before it goes, and on a loaded 2-core
    machine that has taken over two minutes (after an engine whose wait was cut short by Ctrl-C)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            left = read()
        except ApiException as gone:
            if gone.status == 404:
                return
            raise
        time.sleep(1)
    conditions = getattr(getattr(left, "status", None), "conditions", None) or []
    raise AssertionError(f"{left.metadata.name} still there after {timeout_s:.0f}s: "
                         + ("; ".join(f"{c.type} {c.reason}: {c.message}" for c in conditions) or "no condition given"))


@pytest.fixture(scope="module")
def fleet_project(deployed: Path, api: client.ApiClient) -> Iterator[Path]:
    """The scratch project with the small fleet written in; every fleet stack destroyed after and the
    environment file put back (later modules deploy full tenants from its default app set)."""
    core = client.CoreV1Api(api)
    environment = environment_file(deployed, ENV)
    original = environment.read_text()
    make_small_fleet(deployed, FLEET + [RACED])
    muni = deployed / "environments" / ENV / "municipalities"
    broken = muni / f"{BROKEN_CONFIG.lower()}.yaml"
    broken.write_text(broken.read_text() + "size: XXL\n")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=UNMANAGED.lower(), labels={"pod-security.kubernetes.io/enforce": "privileged"})))
    try:
        yield deployed
    finally:
        fleet("destroy", *FLEET, RACED, "--parallel", "4", "--allow-data-loss", ENV, "--yes")
        environment.write_text(original)
        forget_tenants(deployed, FLEET + [RACED])
        try:
            core.delete_namespace(UNMANAGED.lower())
        except ApiException:
            pass


def test_failures_are_isolated_and_reported(fleet_project: Path) -> None:
    assert fleet("up", *FLEET, "--parallel", "4", "--yes") == 1
    rep = latest_report(fleet_project)
    stacks = by_code(rep)
    assert rep["totals"] == {"succeeded": 4, "failed": 2, "skipped": 0, "not-started": 0}
    broken = stacks[BROKEN_CONFIG]
    assert broken["error_kind"] == "invalid-config"
    assert broken["error"].startswith(f"environments/sandbox/municipalities/{BROKEN_CONFIG.lower()}.yaml:")
    assert "size" in broken["error"]
    unmanaged = stacks[UNMANAGED]
    assert unmanaged["error_kind"] == "engine-failed" and "conflict" in unmanaged["error"].lower()
    run_dir = report.runs_dir(fleet_project) / rep["run_id"]
    assert "pod-security.kubernetes.io/enforce" in (run_dir / unmanaged["log"]).read_text()
    for code in set(FLEET) - {BROKEN_CONFIG, UNMANAGED}:
        assert stacks[code]["status"] == "succeeded" and stacks[code]["changes"]["create"] > 0


def test_logs_hold_no_secret_value(fleet_project: Path) -> None:
    run_dir = report.runs_dir(fleet_project) / latest_report(fleet_project)["run_id"]
    logs = "".join(p.read_text() for p in run_dir.glob("*.log"))
    _, stack = open_stack(ENV, "GM0153")
    secrets = [v.value for v in stack.get_all_config().values() if v.secret]
    assert secrets and not [s for s in secrets if s in logs]


def test_resume_reruns_only_the_failed_stacks_after_the_fix(fleet_project: Path, api: client.ApiClient) -> None:
    failed_run = latest_report(fleet_project)["run_id"]
    broken = fleet_project / "environments" / ENV / "municipalities" / f"{BROKEN_CONFIG.lower()}.yaml"
    broken.write_text(broken.read_text().replace("size: XXL\n", "size: S\n"))
    core = client.CoreV1Api(api)
    core.delete_namespace(UNMANAGED.lower())
    wait_until_gone(lambda: core.read_namespace(UNMANAGED.lower()))
    assert fleet("up", *FLEET, "--resume", failed_run, "--yes") == 0
    rep = latest_report(fleet_project)
    assert rep["resumed_from"] == failed_run
    assert sorted(by_code(rep)) == sorted([BROKEN_CONFIG, UNMANAGED])
    assert all(s["status"] == "succeeded" and s["changes"]["create"] > 0 for s in rep["stacks"])


def test_a_second_up_changes_nothing_anywhere(fleet_project: Path) -> None:
    assert fleet("up", *FLEET, "--parallel", "4", "--yes") == 0
    rep = latest_report(fleet_project)
    assert len(rep["stacks"]) == len(FLEET)
    assert [s["code"] for s in rep["stacks"] if s["changed"]] == []


def test_refresh_preview_only_lists_the_drifted_stack(fleet_project: Path, api: client.ApiClient, capsys) -> None:
    # Drift as it happens: someone deletes a tenant's default-deny NetworkPolicy by hand. (A label
    # added by another field manager is not drift: server-side apply only tracks its own fields.)
    client.NetworkingV1Api(api).delete_namespaced_network_policy("default-deny", DRIFTED.lower())
    capsys.readouterr()
    assert fleet("refresh", *FLEET, "--preview-only") == 0
    rep = latest_report(fleet_project)
    assert [(s["code"], s["changes"].get("delete")) for s in rep["stacks"] if s["changed"]] == [(DRIFTED, 1)]
    assert f"drift in 1 stack(s)\n  sandbox.{DRIFTED.lower()}: +0 ~0 -1" in capsys.readouterr().out
    assert fleet("up", DRIFTED, "--yes") == 0  # up refreshes first: finds the policy gone and puts it back
    changes = by_code(latest_report(fleet_project))[DRIFTED]["changes"]
    assert changes.get("create") == 1 and changes.get("refresh-gone") == 1, changes
    client.NetworkingV1Api(api).read_namespaced_network_policy("default-deny", DRIFTED.lower())


def test_two_runs_on_one_stack_one_fails_cleanly_and_state_converges(fleet_project: Path) -> None:
    runs = report.runs_dir(fleet_project)
    before = set(runs.iterdir())
    first = subprocess.Popen([sys.executable, "-m", "cgkit.cli.app", "fleet", "up", RACED, "--env", ENV, "--yes"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        log = _new_run_log(runs, before, RACED)
        _wait_for_line(log, "Updating (", first)
        assert fleet("up", RACED, "--yes") == 1  # the second run, while the first holds the lock
        second = latest_report(fleet_project)
    finally:
        finish(first)
    assert first.returncode == 0
    (raced,) = second["stacks"]
    assert raced["status"] == "failed" and raced["error_kind"] == "stack-locked"
    _, stack = open_stack(ENV, RACED)
    assert stack.export_stack().deployment["resources"]  # the state loads
    assert fleet("up", RACED, "--yes") == 0
    assert not latest_report(fleet_project)["stacks"][0]["changed"]


def _new_run_log(runs: Path, before: set[Path], code: str, timeout_s: float = seconds(60)) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = set(runs.iterdir()) - before
        if new:
            return report.log_file(new.pop(), ENV, code)
        time.sleep(0.2)
    raise AssertionError("the first run did not start")


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout_s: float = seconds(120)) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and text in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{log.name} never showed {text!r} (exit {process.poll()})")


def test_ctrl_c_starts_nothing_new_and_leaves_no_stack_locked(fleet_project: Path) -> None:
    runs = report.runs_dir(fleet_project)
    before = set(runs.iterdir())
    # its own process group, so killpg is what Ctrl-C on a terminal does: SIGINT to cgkit and the engines
    run = subprocess.Popen([sys.executable, "-m", "cgkit.cli.app", "fleet", "destroy", *FLEET, RACED,
                            "--env", ENV, "--parallel", "2", "--allow-data-loss", ENV, "--yes"], cwd=ROOT, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_default_sigint)
    try:
        _wait_for_line(_new_run_log(runs, before, FLEET[0]), "Destroying (", run)
        os.killpg(run.pid, signal.SIGINT)
    finally:
        finish(run)
    assert run.returncode == 130
    rep = latest_report(fleet_project)
    assert rep["interrupted"] and rep["totals"]["not-started"] >= 1
    for stack in rep["stacks"]:
        assert stack["status"] in ("succeeded", "not-started") or stack["error_kind"] == "cancelled", stack


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A test run started in the background (`cmd &` in a
    script) inherits SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_zz_resumed_destroy_removes_every_tenant(fleet_project: Path, api: client.ApiClient) -> None:
    interrupted = latest_report(fleet_project)
    assert fleet("destroy", "--resume", interrupted["run_id"], "--parallel", "4", "--allow-data-loss", ENV,
                 "--yes") == 0
    rep = latest_report(fleet_project)
    assert {s["code"] for s in rep["stacks"]} == set(report.unfinished_codes(interrupted))  # none locked
    core = client.CoreV1Api(api)
    for code in FLEET + [RACED]:
        wait_until_gone(lambda: core.read_namespace(code.lower()))
