"""Every deadline of the tests, in one place, and the two ways a test waits without hanging.

A deadline is a bound against a hang, never a performance claim (speed belongs in benchmarks/).
Each one is ``seconds(base)``: ``base`` is what a quiet 2-core machine needs with room to spare,
times CGKIT_TEST_SLOWNESS (default 1; a loaded or slower machine sets 2 or 3). Every test also has
a whole-test bound (pytest-timeout, set in tests/conftest.py from TEST_S and LIVE_TEST_S): when it
fires, pytest-timeout prints every thread's stack (where it hung) and the test fails, its fixtures'
teardown still runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

SLOWNESS = float(os.environ.get("CGKIT_TEST_SLOWNESS") or 1)


def seconds(base: float) -> float:
    """``base`` seconds scaled by CGKIT_TEST_SLOWNESS."""
    return base * SLOWNESS


#: One fast-tier test (unit, policy), its fixtures included.
TEST_S = seconds(300)
#: One live-tier test (integration, infra), its fixtures included: the first test of a module may
#: deploy a full tenant (about 2 minutes on the real node) before it starts.
LIVE_TEST_S = seconds(900)
#: A namespace (or another object) to be gone once its stack is destroyed: the namespace
#: controller empties it first, which took over two minutes on a loaded 2-core machine.
GONE_S = seconds(300)
#: A pod to be Running, a probe to answer, a Job to be created.
POD_S = seconds(120)
#: A cgkit command run as its own process (an `up` of a small tenant, a fleet wave).
COMMAND_S = seconds(600)


def wait_until(ok: Callable[[], object], timeout_s: float, what: str, every_s: float = 1.0) -> object:
    """Call ``ok`` every ``every_s`` seconds until it returns something true; return that.

    Raises:
        AssertionError: naming ``what``, when ``timeout_s`` passed first.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := ok():
            return found
        time.sleep(every_s)
    raise AssertionError(f"{what}: not so after {timeout_s:.0f}s")


def finish(process: subprocess.Popen, timeout_s: float = COMMAND_S) -> tuple[str, str]:
    """``process.communicate()`` within ``timeout_s``; on timeout its whole process group is killed
    (the process must be started with ``start_new_session=True``: an engine it started would
    otherwise keep running and hold its stack's lock) and the test fails.

    Returns:
        (stdout, stderr), each "" when not captured.
    """
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process)
        out, err = process.communicate()
        raise AssertionError(f"{' '.join(map(str, process.args))} still ran after {timeout_s:.0f}s; killed "
                             f"with its process group. Its output's end: {(out or '')[-1500:]}{(err or '')[-1500:]}")
    return out or "", err or ""


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL ``process``'s process group (it leads one: ``start_new_session=True``)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
