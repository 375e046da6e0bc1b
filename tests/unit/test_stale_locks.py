"""`cgkit fleet unlock`: a stack lock is removed only when its holder is provably gone (a process of
this machine that no longer runs, or whose id a later process took); every other lock stays."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cgkit import locks
from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus

HERE = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid  # reaped: no process has this id now (until the kernel reuses it, far later)


def write_lock(state: Path, stack: str, pid: int, host: str = HERE, when: datetime | None = None,
               name: str = "a1b2") -> Path:
    """A lock as Pulumi's diy backend writes it (pkg/backend/diy/lock.go)."""
    path = state / ".pulumi" / "locks" / "organization" / "cgkit" / stack / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = (when or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")
    path.write_text(json.dumps({"pid": pid, "username": "ci", "hostname": host, "timestamp": stamp}))
    return path


def test_a_dead_holder_of_this_machine_is_gone(tmp_path: Path) -> None:
    write_lock(tmp_path, "sandbox.gm0153", _dead_pid())
    [lock] = locks.backend_locks(f"file://{tmp_path}")
    assert lock.stack == "sandbox.gm0153"
    gone, why = locks.holder_gone(lock)
    assert gone and "no longer runs" in why


def test_a_running_holder_is_not_gone(tmp_path: Path) -> None:
    write_lock(tmp_path, "sandbox.gm0153", os.getpid())  # this process started before the lock
    gone, why = locks.holder_gone(locks.backend_locks(f"file://{tmp_path}")[0])
    assert not gone and "still running" in why


def test_a_reused_process_id_is_gone(tmp_path: Path) -> None:
    write_lock(tmp_path, "sandbox.gm0153", os.getpid(), when=datetime.now(timezone.utc) - timedelta(days=400))
    gone, why = locks.holder_gone(locks.backend_locks(f"file://{tmp_path}")[0])
    assert gone and "later process" in why


def test_another_machines_holder_is_never_proven_gone(tmp_path: Path) -> None:
    write_lock(tmp_path, "sandbox.gm0153", _dead_pid(), host="runner-7")
    gone, why = locks.holder_gone(locks.backend_locks(f"file://{tmp_path}")[0])
    assert not gone and "another machine" in why


def test_what_is_no_lock_is_said_never_judged_gone_and_left_alone(tmp_path: Path) -> None:
    junk = write_lock(tmp_path, "sandbox.gm0153", 1)
    junk.write_text("not json")  # the engine still refuses to update the stack
    [lock] = locks.backend_locks(f"file://{tmp_path}")
    assert lock.stack == "sandbox.gm0153" and lock.problem == "not the JSON of a Pulumi lock"
    assert locks.holder_gone(lock)[0] is False and junk.exists()


def test_a_fifo_in_the_locks_folder_is_said_and_never_opened(tmp_path: Path) -> None:
    fifo = write_lock(tmp_path, "sandbox.gm0153", 1)
    fifo.unlink()
    os.mkfifo(fifo)  # reading it would block for ever
    [lock] = locks.backend_locks(f"file://{tmp_path}")
    assert "FIFO" in lock.problem and locks.holder_gone(lock)[0] is False


def test_other_backends_are_refused() -> None:
    with pytest.raises(locks.LockError, match="file:// and s3://"):
        locks.backend_locks("gs://cgkit-state")


def test_unlock_removes_only_the_provably_gone_and_exits_1_for_the_rest(scratch_root: Path, capsys) -> None:
    state = scratch_root / ".cgkit" / "state"
    dead = write_lock(state, "sandbox.gm0153", _dead_pid())
    remote = write_lock(state, "sandbox.gm0014", _dead_pid(), host="runner-7")
    other_env = write_lock(state, "acc.gm0153", _dead_pid())
    assert main(["fleet", "unlock", "--env", "sandbox"]) == ExitStatus.FAILED
    printed = capsys.readouterr().out
    assert not dead.exists() and remote.exists() and other_env.exists()
    assert "sandbox.gm0153: removed the lock" in printed
    assert "sandbox.gm0014: kept the lock held by pid" in printed and "pulumi cancel -s sandbox.gm0014" in printed
    assert main(["fleet", "unlock", "--env", "sandbox", "GM0153"]) == ExitStatus.OK
    assert "no lock on sandbox.gm0153" in capsys.readouterr().out


def test_a_lock_that_is_a_link_is_never_followed(tmp_path: Path) -> None:
    outside = write_lock(tmp_path / "outside", "sandbox.gm0153", _dead_pid())
    linked = tmp_path / "state" / ".pulumi" / "locks" / "organization" / "cgkit" / "sandbox.gm0153"
    linked.mkdir(parents=True)
    (linked / "a1b2.json").symlink_to(outside)
    (linked.parent / "sandbox.gm0014").symlink_to(outside.parent, target_is_directory=True)
    found = locks.backend_locks(f"file://{tmp_path / 'state'}")
    assert found and all(lock.problem and not locks.holder_gone(lock)[0] for lock in found)
    assert outside.exists()
