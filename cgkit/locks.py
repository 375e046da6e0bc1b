"""Stack locks left by a runner that died, and removing only those whose holder is provably gone.

Pulumi's self-managed backends lock a stack for an update by writing one object per holder,
``.pulumi/locks/<org>/<project>/<stack>/<id>.json``, holding ``{"pid", "username", "hostname",
"timestamp"}`` (pulumi/pkg/backend/diy/lock.go). The engine deletes it when the update ends; an
engine killed with SIGKILL (a runner's pod evicted, an OOM kill) leaves it, and every later update
of that stack fails with "the stack is currently locked" (pulumi-kubernetes-operator #368, #252).

The rule (`holder_gone`): a lock may be removed only when its holder is provably gone, which this
machine can prove only for a holder of this machine: the lock names this host, and its process id
is not running, or runs a program that started after the lock was written (the id was reused).
A lock of a fleet runner pod is judged by the cluster instead (``runner_pods``): its pod has
ended or no longer exists. A lock of another host is never removed here: its runner may be alive; the person who knows it is
not removes it with ``pulumi cancel``. Locks are read and removed directly in the backend (a
folder for ``file://``, a bucket for ``s3://``, with the engine's own credentials); other backends
are refused. A lock file read from a folder passes cgkit's input boundary (a regular file, not a
link, bounded: a FIFO there would block the read for ever). An object under a stack's lock folder
that cgkit cannot read or parse still stops the engine, so it is a `Lock` with its ``problem`` said,
which is never judged gone: nothing is said to be unlocked over a lock nobody could read.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from cgkit import state
from cgkit.config.yamlsource import Limits, read_text
from cgkit.errors import CgkitError, ConfigError
from cgkit.urls import redact

LOCKS = ".pulumi/locks/"
#: A lock is a line of JSON; anything much larger is no lock.
LOCK_LIMITS = Limits(max_bytes=64 << 10)


class LockError(CgkitError):
    """The backend's locks could not be read or removed."""

    reference = "stack-lock"


@dataclass(frozen=True)
class Lock:
    """One lock object: ``stack`` it holds, ``key`` in the backend (a path under the state folder or
    a bucket key), and what its holder wrote: ``pid``, ``hostname``, ``username``, ``timestamp``."""

    stack: str
    key: str
    pid: int
    hostname: str
    username: str
    timestamp: datetime
    problem: str | None = None  #: why the object could not be read as a lock (then the rest is empty)

    @classmethod
    def unreadable(cls, stack: str, key: str, problem: str) -> "Lock":
        """An object in a stack's lock folder that is no lock cgkit can judge, and why."""
        return cls(stack, key, 0, "", "", datetime.min.replace(tzinfo=timezone.utc), problem)


#: The phases of the runner pods a lock's hostname names, [] when none exists any more, or None
#: when the hostname is no runner pod's (cgkit/fleet/in_cluster.py ``pod_phases``).
RunnerPods = Callable[[str], "list[str] | None"]


def holder_gone(lock: Lock, hostname: str | None = None, runner_pods: RunnerPods | None = None) -> tuple[bool, str]:
    """Whether ``lock``'s holder is provably gone, and why (a sentence for the person reading it).

    With ``runner_pods``, a lock written by a fleet runner pod (its hostname is ``<job>-<index>``)
    is judged by the cluster: gone when no pod of that Job and index exists or every one has ended
    (Succeeded or Failed: its containers run no process); kept while one is Pending or Running.
    """
    if lock.problem:
        return False, (f"{lock.key}, which cgkit cannot read as a lock ({lock.problem}) and the engine still "
                       "honours; check it and remove it by hand")
    here = hostname or socket.gethostname()
    phases = runner_pods(lock.hostname) if runner_pods is not None and lock.hostname != here else None
    if phases is not None:
        alive = [phase for phase in phases if phase not in ("Succeeded", "Failed")]
        if alive:
            return False, f"held by runner pod {lock.hostname}, which is {alive[0]} (an update in progress)"
        return True, f"held by runner pod {lock.hostname}, which " + ("has ended" if phases else "no longer exists")
    if lock.hostname != here:
        return False, (f"held by pid {lock.pid} on {lock.hostname}, another machine than this one ({here}): "
                       "cannot prove it is gone")
    started = _process_start(lock.pid)
    if started is None:
        return True, f"held by pid {lock.pid} on this machine, which no longer runs"
    if started > lock.timestamp:
        return True, f"held by pid {lock.pid} on this machine, whose id now belongs to a later process"
    return False, f"held by pid {lock.pid} on this machine, still running (an update in progress)"


def backend_locks(backend: str) -> list[Lock]:
    """Every stack lock in the state backend at URL ``backend`` (``file://`` or ``s3://``); objects
    under the lock folder that are no lock Pulumi writes are left out (and alone).

    Raises:
        LockError: another kind of backend, or the bucket could not be listed.
    """
    return _store(backend).locks()


def remove(backend: str, lock: Lock) -> None:
    """Delete ``lock`` from the backend at URL ``backend``."""
    _store(backend).delete(lock.key)


def _parse(stack: str, key: str, raw: bytes) -> Lock:
    """A lock object's content, or an `unreadable <Lock.unreadable>` one saying why it is no lock
    cgkit can judge (it is left alone, and said)."""
    try:
        body = json.loads(raw)
        stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
        return Lock(stack, key, int(body["pid"]), str(body["hostname"]), str(body.get("username", "")),
                    stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc))
    except (ValueError, KeyError, TypeError, AttributeError) as bad:
        why = f"no field {bad}" if isinstance(bad, KeyError) else "not the JSON of a Pulumi lock"
        return Lock.unreadable(stack, key, why)


def _stack_of(key: str) -> str | None:
    """``<stack>`` of ``.pulumi/locks/.../<stack>/<id>.json``."""
    parts = key.split("/")
    return parts[-2] if key.endswith(".json") and len(parts) >= 4 else None


class _Folder:
    """A ``file://`` backend: locks are files under its folder."""

    def __init__(self, root: Path):
        self.root = root

    def locks(self) -> list[Lock]:
        found = []
        for path in sorted((self.root / LOCKS).glob("**/*.json")):
            key = path.relative_to(self.root).as_posix()
            if not (stack := _stack_of(key)):
                continue
            if path.is_symlink():  # Pulumi writes plain files; a link could make a removal reach outside
                found.append(Lock.unreadable(stack, key, f"a symbolic link to {os.readlink(path)}"))
                continue
            try:  # the input boundary: a FIFO or device is refused, never opened for reading
                raw = read_text(path, key, self.root / LOCKS, LOCK_LIMITS).encode()
            except ConfigError as bad:
                found.append(Lock.unreadable(stack, key, "; ".join(issue.message for issue in bad.issues)))
                continue
            found.append(_parse(stack, key, raw))
        return found

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


class _Bucket:
    """An ``s3://`` backend: locks are objects of its bucket, read with the engine's credentials."""

    def __init__(self, url: str):
        import boto3  # imported late: slow, and only S3 backends need it
        from botocore.config import Config

        from botocore.exceptions import BotoCoreError

        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        path_style = any(params.get(k, "").lower() in ("1", "t", "true") for k in ("use_path_style", "s3ForcePathStyle"))
        self.bucket, self.prefix = parts.hostname, params.get("prefix", "")
        try:  # a profile that does not exist, an endpoint that is no URL: said, with the backend named
            session = boto3.session.Session(profile_name=params.get("profile"), region_name=params.get("region"))
            self.s3 = session.client("s3", endpoint_url=params.get("endpoint"),
                                     config=Config(s3={"addressing_style": "path" if path_style else "auto"}))
        except (BotoCoreError, ValueError) as failed:
            raise LockError(f"cannot open the state backend {redact(url)} to read its locks: {failed}",
                            hint="check state.backend (or PULUMI_BACKEND_URL) and the AWS_* settings") from None

    def locks(self) -> list[Lock]:
        from botocore.exceptions import BotoCoreError, ClientError

        found = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                           Prefix=self.prefix + LOCKS):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix):]
                    if stack := _stack_of(key):
                        raw = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                        found.append(_parse(stack, key, raw))
        except (BotoCoreError, ClientError) as failed:
            raise LockError(f"could not list the locks in s3://{self.bucket}: {failed}",
                            hint="check that the store answers and the AWS_* credentials may read the bucket") from None
        return found

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)


def _store(backend: str):
    if (folder := state.local_path(backend)) is not None:
        return _Folder(folder)
    if backend.startswith("s3://"):
        return _Bucket(backend)
    raise LockError(f"cgkit reads stack locks on file:// and s3:// backends, not {backend.split('://')[0]}://",
                    hint="check the holder yourself, then: pulumi cancel -s <stack>")


def _process_start(pid: int) -> datetime | None:
    """When process ``pid`` started (UTC), or None when no such process runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    if stat[0] == "Z":
        return None
    ticks = int(stat[19])  # field 22 of proc(5): start time in clock ticks after boot
    boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), tz=timezone.utc)
