"""The app stand-in (cgkit/standin/standin.py): roles by name, health files, Host checks.

Its database and Redis checks are exercised for real on the sandbox's node (tests/integration);
here they are replaced, to pin down what the stand-in does with their answers.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "standin", Path(__file__).resolve().parents[2] / "cgkit" / "standin" / "standin.py")
standin = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(standin)


def test_probe_commands_follow_the_freshness_of_their_files(tmp_path: Path) -> None:
    live = tmp_path / "beat.live"
    assert standin.main(["maykin-common", "beat-health-check", f"--file={live}", "--max-age=60"]) == 1
    live.touch()
    assert standin.main(["maykin-common", "beat-health-check", f"--file={live}", "--max-age=60"]) == 0
    old = time.time() - 120
    os.utime(live, (old, old))
    assert standin.main(["maykin-common", "beat-health-check", f"--file={live}", "--max-age=60"]) == 1
    ready = tmp_path / "worker.ready"
    check = ["maykin-common", "worker-health-check", "--skip-ping", "--skip-event-loop-liveness",
             "--no-skip-readiness", f"--readiness-file={ready}"]
    assert standin.main(check) == 1
    ready.touch()
    assert standin.main(check) == 0


def test_an_unknown_role_or_command_fails_loudly() -> None:
    assert standin.main(["/usr/bin/somethingelse"]) == 2
    assert standin.main(["/app/src/manage.py", "flush"]) == 2
    assert standin.main(["maykin-common", "nonsense"]) == 2


def test_worker_files_disappear_when_the_broker_fails(tmp_path: Path, monkeypatch) -> None:
    files = [tmp_path / "ready", tmp_path / "heartbeat"]
    answers = iter([None, "redis down"])
    monkeypatch.setattr(standin, "check_redis", lambda _env: next(answers))
    monkeypatch.setattr(standin, "check_database", lambda need_migrations: None)

    def stop_after_two(_s: float) -> None:
        stop_after_two.calls += 1
        if stop_after_two.calls == 1:
            assert all(f.exists() for f in files)  # healthy: touched
        else:
            raise StopIteration

    stop_after_two.calls = 0
    monkeypatch.setattr(standin.time, "sleep", stop_after_two)
    with pytest.raises(StopIteration):
        standin._keep_fresh(files)
    assert not any(f.exists() for f in files)  # broker gone: removed, so the probes fail


@pytest.fixture
def web(monkeypatch):
    """The web role's handler on a loopback port, with the dependency check under the test's control."""
    state = {"why": None}
    monkeypatch.setattr(standin, "check_database", lambda need_migrations: state["why"])
    monkeypatch.setattr(standin, "check_redis", lambda _env: None)
    standin._Web.allowed = frozenset({"openzaak", "openzaak.gm0344"})
    standin._Web.cache = {}
    server = standin.http.server.ThreadingHTTPServer(("127.0.0.1", 0), standin._Web)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], state
    server.shutdown()


def _get(port: int, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/_healthz/readyz/", headers={"Host": host})
    return conn.getresponse().status


def test_web_answers_only_allowed_hosts_while_its_dependencies_work(web) -> None:
    port, state = web
    assert _get(port, "openzaak") == 200
    assert _get(port, "openzaak.gm0344:8000") == 200  # port stripped, as Django does
    assert _get(port, "evil.example") == 400
    state["why"] = "database: OperationalError"
    standin._Web.cache = {}
    assert _get(port, "openzaak") == 503


def test_a_long_running_role_ends_at_once_on_sigterm(tmp_path: Path) -> None:
    """As its container's PID 1 a process without a SIGTERM handler ignores SIGTERM, and every pod
    delete waited out the grace period; the roles that run until stopped exit 0 on it."""
    role = tmp_path / "celery_beat.sh"  # the role is the name it is started as
    role.symlink_to(Path(standin.__file__))
    run = subprocess.Popen([sys.executable, str(role)], stdout=subprocess.PIPE, text=True,
                           env={"CELERY_BROKER_URL": "redis://127.0.0.1:9/0", "PATH": os.environ["PATH"]})
    try:
        assert run.stdout.readline().startswith("not healthy"), "the loop runs (its broker is absent)"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=10) == 0
    finally:
        run.kill()
        run.wait()
