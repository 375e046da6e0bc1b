"""A runner killed with SIGKILL in the middle of `cgkit up` (engine, language host and provider at
once, as an evicted pod or an OOM kill): its lock stays and blocks the stack; `cgkit fleet unlock`
removes it because its holder is provably gone, and the operations the engine left unfinished in
the state (which a later `state migrate` would refuse); the next `up` converges and a preview after it
changes nothing; destroy leaves nothing (issue 11)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cgkit import engine, locks
from cgkit.interrupted import pending_operations
from cgkit.stackops import RunOptions, Verb, open_stack, run
from tests.deadlines import COMMAND_S, finish, seconds
from tests.integration.conftest import ENV, ROOT, cgkit
from tests.integration.small_fleet import forget_tenants, small_tenant
from tests.integration.test_fleet import wait_until_gone

pytestmark = pytest.mark.integration
CODE = "GM0200"
STACK = f"{ENV}.{CODE.lower()}"


def _wait_for(what: str, ok, runner: subprocess.Popen, timeout_s: float = COMMAND_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return
        assert runner.poll() is None, f"the runner ended (exit {runner.returncode}) before {what}"
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout_s:.0f}s")


def _namespace_exists(core: client.CoreV1Api) -> bool:
    try:
        core.read_namespace(CODE.lower())
        return True
    except ApiException as missing:
        if missing.status == 404:
            return False
        raise


def test_a_killed_runner_is_unlocked_and_the_stack_converges(deployed: Path, api: client.ApiClient) -> None:
    small_tenant(deployed, CODE)
    core = client.CoreV1Api(api)
    backend = engine.backend_of(engine.EngineSettings(root=deployed))
    runner = subprocess.Popen([sys.executable, "-m", "cgkit.cli.app", "up", "--env", ENV, CODE, "--yes"],
                              cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        _wait_for("lock", lambda: any(lock.stack == STACK for lock in locks.backend_locks(backend)), runner)
        _wait_for("tenant namespace", lambda: _namespace_exists(core), runner)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it ended by itself: the wait above says why
            os.killpg(runner.pid, signal.SIGKILL)
        finish(runner, seconds(60))
    try:
        assert [lock.stack for lock in locks.backend_locks(backend)] == [STACK], "the killed engine left its lock"
        assert cgkit("up", "--env", ENV, CODE, "--yes") != 0, "a locked stack is refused"
        assert cgkit("fleet", "unlock", "--env", ENV, CODE) == 0
        assert locks.backend_locks(backend) == []
        workspace = engine.workspace(open_stack(ENV, CODE, Verb.REFRESH)[0])
        assert pending_operations(workspace.export_stack(STACK)) == [], "unlock drops what the killed engine left"
        assert cgkit("up", "--env", ENV, CODE, "--yes") == 0
        settings, stack = open_stack(ENV, CODE, Verb.PREVIEW)
        outcome = run(Verb.PREVIEW, stack, settings, lambda _line: None, RunOptions())
        assert set(outcome.changes) <= {"same"}, outcome.changes
    finally:
        cgkit("fleet", "unlock", "--env", ENV, CODE)
        assert cgkit("destroy", "--env", ENV, CODE, "--allow-data-loss", CODE, "--yes") == 0
        wait_until_gone(lambda: core.read_namespace(CODE.lower()))
        forget_tenants(deployed, (CODE,))
