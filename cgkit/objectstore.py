"""A local S3-compatible object store for the sandbox and the tests: Versity's S3 gateway (versitygw).

versitygw (github.com/versity/versitygw, Apache-2.0) is a real S3 server that keeps buckets as
directories and objects as files of a POSIX file system; tools/build-toolchain builds it from its Go
module (family ``objectstore``). Why this one and not SeaweedFS: see DESIGN.md decision 16. It
serves what a team's bucket serves to cgkit: Pulumi's state backend (``s3://`` through gocloud.dev,
with path-style addressing) and the tenants' backups, each tenant with an account of its own that a
bucket policy lets touch only its prefix (`create_account`, `allow_prefix`).

A store lives in one folder (default ``<sandbox dir>/objectstore``, mode 0700)::

    data/          the buckets (posix backend root)
    meta/          object metadata (versitygw's sidecar folder; no reliance on the file system's xattrs)
    iam/           versitygw's internal IAM (accounts other than root)
    credentials    the root access key and secret, generated once, AWS shared-credentials format,
                   profile ``cgkit-sandbox`` (0600); never printed, never on a command line
    versitygw.pid, versitygw.log

It listens on 127.0.0.1 and, when asked (``also_on``), on the real node's bridge address, which is
on no outward interface (plain http: `cgkit.state` allows http to this machine alone).

    store = ObjectStore(paths.objectstore)
    store.up(port=9870, buckets=["cgkit-state"])
    store.backend_url("cgkit-state")   # s3://cgkit-state?endpoint=http://127.0.0.1:9870&...
    store.client_env()                 # AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE for the engine
    store.down()
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from cgkit import toolchain
from cgkit.errors import CgkitError

PROFILE = "cgkit-sandbox"  #: profile name in the credentials file
REGION = "us-east-1"  #: versitygw's default region; buckets are created there
DEFAULT_PORT = 9870  #: outside the sandbox's NodePort range (30000-31999) and its control-plane ports
START_TIMEOUT_S = 30.0


class ObjectStoreError(CgkitError):
    """The local object store could not be started, reached or stopped."""

    reference = "objectstore"


@dataclass(frozen=True)
class ObjectStore:
    """One local store in the folder ``root`` (see the module doc for its layout)."""

    root: Path

    @property
    def credentials(self) -> Path:
        """The AWS shared-credentials file with the root key (profile ``cgkit-sandbox``, 0600)."""
        return self.root / "credentials"

    @property
    def log(self) -> Path:
        return self.root / "versitygw.log"

    @property
    def _pidfile(self) -> Path:
        return self.root / "versitygw.pid"

    @property
    def _portfile(self) -> Path:
        return self.root / "port"

    # ---- lifecycle ------------------------------------------------------------------------------

    def up(self, port: int = DEFAULT_PORT, buckets: tuple[str, ...] | list[str] = (),
           also_on: tuple[str, ...] = ()) -> None:
        """Start the store on 127.0.0.1:``port`` unless it runs, wait until it answers, and create
        ``buckets`` that do not exist yet. The root key is generated on the first start.
        ``also_on``: more addresses of this machine to listen on at the same port (the real node's
        bridge, ``node_manifests.NODE_IP``, so that the fleet's runner pods reach the state).

        Raises:
            ObjectStoreError: versitygw is not built, the port is taken, or it did not answer in 30 s.
        """
        binary = toolchain.bin_dir() / "versitygw"
        if not binary.is_file():
            raise ObjectStoreError(f"{binary} is not built", hint="run tools/setup (or tools/build-toolchain "
                                                                  "--only objectstore)")
        for sub in ("data", "meta", "iam"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        access, secret = self._root_key()
        if self.pid() is None:
            self._start(binary, port, access, secret, also_on)
        for bucket in buckets:
            self.ensure_bucket(bucket)

    def down(self, remove_data: bool = True) -> None:
        """Stop the store (SIGTERM, then SIGKILL after 10 s) and, with ``remove_data``, delete its folder."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.pid() is not None:
                os.kill(pid, signal.SIGKILL)
        self._pidfile.unlink(missing_ok=True)
        if remove_data and self.root.exists():
            shutil.rmtree(self.root)

    def pid(self) -> int | None:
        """The running versitygw's process id, or None (a stale pid file is not a running store)."""
        try:
            pid = int(self._pidfile.read_text())
            alive = b"versitygw" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if alive and not _zombie(pid) else None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` of the store (the port it was last started on).

        Raises:
            ObjectStoreError: the store was never started.
        """
        try:
            return f"http://127.0.0.1:{int(self._portfile.read_text())}"
        except (OSError, ValueError):
            raise ObjectStoreError(f"no object store in {self.root}", hint="cgkit sandbox up --object-store") from None

    # ---- what clients need ----------------------------------------------------------------------

    def backend_url(self, bucket: str) -> str:
        """The ``state.backend`` URL of ``bucket`` in this store (path-style, http to this machine)."""
        return f"s3://{bucket}?endpoint={self.endpoint}&use_path_style=true&region={REGION}"

    def client_env(self) -> dict[str, str]:
        """The variables an AWS client (the engine, boto3) needs for this store's root key: the
        credentials file and its profile, never the key itself."""
        return {"AWS_SHARED_CREDENTIALS_FILE": str(self.credentials), "AWS_PROFILE": PROFILE,
                "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        """A boto3 S3 client for this store as root."""
        import boto3  # imported late: slow, and only the store's users need it

        access, secret = self._root_key()
        return boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret,
                                     region_name=REGION).client(
            "s3", endpoint_url=self.endpoint, config=_path_style())

    def ensure_bucket(self, bucket: str) -> None:
        """Create ``bucket`` unless it exists."""
        s3 = self.client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of ``bucket``: key -> content (for tests and checks on small buckets)."""
        s3 = self.client()
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]
        return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}

    # ---- accounts and their prefixes --------------------------------------------------------------

    def create_account(self, access: str, secret: str) -> None:
        """Create an account (role ``user``: it owns nothing and may do only what bucket policies
        grant it) with the key ``access``/``secret``; an existing account with that key is kept.
        Through versitygw's admin API (``PATCH /create-user``, the key in the body, never on a
        command line).

        Raises:
            ObjectStoreError: the store refused (its answer is in the message).
        """
        body = (f"<Account><Access>{xml_escape(access)}</Access><Secret>{xml_escape(secret)}</Secret>"
                "<Role>user</Role></Account>").encode()
        answer = self._admin("create-user", body)
        if answer is not None and "UserAlreadyExists" not in answer and "already exists" not in answer:
            raise ObjectStoreError(f"the object store refused to create an account: {answer[:300]}")

    def delete_account(self, access: str) -> None:
        """Delete the account with access key ``access`` (``PATCH /delete-user?access=``); its objects
        stay. A missing account is not an error.

        Raises:
            ObjectStoreError: the store refused otherwise (its answer is in the message).
        """
        answer = self._admin(f"delete-user?access={urllib.parse.quote(access, safe='')}", b"")
        if answer is not None and "NoSuchUser" not in answer and "not found" not in answer.lower():
            raise ObjectStoreError(f"the object store refused to delete an account: {answer[:300]}")

    def _admin(self, path: str, body: bytes) -> str | None:
        """Send ``PATCH /<path>`` to versitygw's admin API, signed as root with SigV4; return None on
        success, else the store's answer."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method="PATCH", url=f"{self.endpoint}/{path}", data=body,
                             headers={"X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()})
        SigV4Auth(Credentials(*self._root_key()), "s3", REGION).add_auth(request)
        prepared = urllib.request.Request(request.url, data=body, headers=dict(request.headers), method="PATCH")
        try:
            urllib.request.urlopen(prepared, timeout=10).close()  # noqa: S310 (this machine's store)
        except urllib.error.HTTPError as refused:
            return refused.read().decode(errors="replace")
        return None

    def allow_prefix(self, bucket: str, access: str, prefix: str, sid: str) -> None:
        """Let account ``access`` list, read, write and delete objects under ``bucket``/``prefix`` and
        nothing else: two statements named ``<sid>-objects`` and ``<sid>-list`` in the bucket policy,
        replacing earlier ones of that ``sid`` (other statements stay)."""
        s3 = self.client()
        policy, statements = self._policy_without(s3, bucket, sid)
        principal = {"AWS": [access]}
        statements += [
            {"Sid": f"{sid}-objects", "Effect": "Allow", "Principal": principal,
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
             "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]},
            {"Sid": f"{sid}-list", "Effect": "Allow", "Principal": principal, "Action": ["s3:ListBucket"],
             "Resource": [f"arn:aws:s3:::{bucket}"], "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
        ]
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": statements}))

    def revoke_prefix(self, bucket: str, sid: str) -> None:
        """Remove the statements ``allow_prefix`` wrote for ``sid`` from the bucket policy."""
        s3 = self.client()
        policy, statements = self._policy_without(s3, bucket, sid)
        if statements:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": statements}))
        else:
            s3.delete_bucket_policy(Bucket=bucket)

    # ---- internals --------------------------------------------------------------------------------

    @staticmethod
    def _policy_without(s3, bucket: str, sid: str) -> tuple[dict, list[dict]]:
        """The bucket's policy (an empty one when it has none) and its statements other than ``sid``'s."""
        try:
            policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except s3.exceptions.ClientError as refused:
            if refused.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
                raise  # any other answer is not "no policy": never write one over what we could not read
            policy = {"Version": "2012-10-17", "Statement": []}
        return policy, [st for st in policy.get("Statement", []) if not str(st.get("Sid", "")).startswith(f"{sid}-")]

    def _root_key(self) -> tuple[str, str]:
        """The root access key and secret from the credentials file, generated (0600) the first time."""
        parser = configparser.ConfigParser()
        if not self.credentials.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            parser[PROFILE] = {"aws_access_key_id": "cgkit" + secrets.token_hex(8),
                               "aws_secret_access_key": secrets.token_urlsafe(30)}
            fd = os.open(self.credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                parser.write(handle)
        parser.read(self.credentials)
        return parser[PROFILE]["aws_access_key_id"], parser[PROFILE]["aws_secret_access_key"]

    def _start(self, binary: Path, port: int, access: str, secret: str, also_on: tuple[str, ...]) -> None:
        """Start versitygw (root key in its environment, not its argv) and wait until it answers."""
        listen = [arg for host in ("127.0.0.1", *also_on) for arg in ("--port", f"{host}:{port}")]
        cmd = [str(binary), *listen, "--iam-dir", str(self.root / "iam"), "--quiet",
               "posix", "--sidecar", str(self.root / "meta"), str(self.root / "data")]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ROOT_ACCESS_KEY_ID": access,
               "ROOT_SECRET_ACCESS_KEY": secret}
        with self.log.open("a") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        self._pidfile.write_text(str(proc.pid))
        self._portfile.write_text(str(port))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers(f"http://127.0.0.1:{port}/"):
                return
            time.sleep(0.2)
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-8:])
        self.down(remove_data=False)
        raise ObjectStoreError(f"versitygw did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f}s"
                               + (f"; last lines of {self.log}:\n{tail}" if tail else ""),
                               hint="is the port taken? choose another with --object-store-port")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick), for a store of the tests or benchmarks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    """Whether an HTTP server answers ``url`` at all (an S3 error status counts: it is S3 speaking)."""
    try:
        urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 (loopback only)
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _path_style():
    from botocore.config import Config

    return Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
