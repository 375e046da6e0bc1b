"""Infra checks (pytest-testinfra, local backend) of the running sandbox's control plane.

Needs the sandbox running (`cgkit sandbox up`; tools/test starts it). Not running is a failure
with a message, never a skip. Checks what DESIGN.md and the toolchain brief promise: RBAC, audit
log, Secrets encrypted at rest, anonymous auth off, loopback-only ports (but the API server's),
private state files.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from cgkit import sandbox, toolchain
from cgkit import sandbox_manifests as manifests

pytestmark = pytest.mark.infra
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paths() -> sandbox.SandboxPaths:
    assert sandbox.is_running(ROOT), "the sandbox is not running: run `cgkit sandbox up`"
    return sandbox.paths(ROOT)


def _args(host, paths: sandbox.SandboxPaths, name: str) -> list[str]:
    """Command-line arguments of the sandbox's process ``name`` (exactly one must run)."""
    pids = [pid for pid, comm in sandbox.processes(ROOT) if comm == name]
    assert len(pids) == 1, f"expected one {name} process of the sandbox, found {pids}"
    return host.process.get(pid=pids[0]).args.split()


def _flag(args: list[str], flag: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{flag}=")]
    return values[-1] if values else None


def test_apiserver_authorizes_with_node_and_rbac(host, paths) -> None:
    args = _args(host, paths, "kube-apiserver")
    assert set((_flag(args, "authorization-mode") or "").split(",")) >= {"Node", "RBAC"}


def test_apiserver_keeps_default_admission_plugins(host, paths) -> None:
    args = _args(host, paths, "kube-apiserver")
    assert _flag(args, "admission-control") is None, "admission disabled: Pod Security would be off"


def test_apiserver_writes_an_audit_log(host, paths) -> None:
    args = _args(host, paths, "kube-apiserver")
    policy = host.file(_flag(args, "audit-policy-file"))  # kwokctl copies ours into its workdir
    assert yaml.safe_load(policy.content_string) == manifests.audit_policy()
    log = host.file(_flag(args, "audit-log-path"))
    assert log.exists and log.size > 0
    assert str(paths.root) in log.path


def test_apiserver_encrypts_secrets_with_the_sandbox_key(host, paths) -> None:
    args = _args(host, paths, "kube-apiserver")
    assert _flag(args, "encryption-provider-config") == str(paths.encryption_config)
    config = yaml.safe_load(host.file(str(paths.encryption_config)).content_string)
    assert "secretbox" in config["resources"][0]["providers"][0]


def test_secret_value_never_reaches_etcd_in_plaintext(host, paths) -> None:
    value = "cgkit-infra-" + secrets.token_hex(8)
    kubectl = [str(toolchain.bin_dir() / "kubectl"), "--kubeconfig", str(paths.kubeconfig)]
    name = "infra-probe-" + secrets.token_hex(3)
    subprocess.run([*kubectl, "-n", "default", "create", "secret", "generic", name,
                    f"--from-literal=v={value}"], check=True, capture_output=True)
    try:
        etcd_dir = paths.cluster_dir / "etcd"
        found = host.run(f"grep -rl --binary-files=text {value} {etcd_dir}")
        assert found.rc == 1, f"plaintext secret found in {found.stdout}"
        marker = host.run(f"grep -rlc --binary-files=text k8s:enc:secretbox:v1:key1 {etcd_dir}")
        assert marker.rc == 0, "no secretbox-encrypted value in etcd"
    finally:
        subprocess.run([*kubectl, "-n", "default", "delete", "secret", name], capture_output=True)


def test_anonymous_requests_are_refused(paths) -> None:
    server = yaml.safe_load(paths.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server}/api", context=ctx, timeout=5)
    assert refused.value.code == 401


def test_control_plane_listens_on_loopback_except_the_api_server(host, paths) -> None:
    """etcd, the controllers and kwok on loopback only; the API server also on the node's bridge
    address, because pods (CoreDNS) reach it through the ``kubernetes`` Service (DESIGN.md)."""
    pids = {str(pid): name for pid, name in sandbox.processes(ROOT)}
    lines = host.check_output("ss -Hltnp").splitlines()
    ours = {ln: name for ln in lines for pid, name in pids.items() if f"pid={pid}," in ln}
    assert ours, "no listening sockets found for the sandbox's processes"
    exposed = [ln for ln, name in ours.items()
               if name != "kube-apiserver" and not ln.split()[3].startswith(("127.0.0.1:", "[::1]:"))]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_state_dir_and_secrets_are_private(host, paths) -> None:
    assert host.file(str(paths.root)).mode & 0o077 == 0
    for secret in (paths.encryption_config, paths.kubeconfig, paths.kwokctl_config):
        f = host.file(str(secret))
        assert f.exists and f.mode & 0o077 == 0, f"{secret} is readable by others ({oct(f.mode)})"
    for key in (paths.cluster_dir / "pki").glob("*.key"):
        assert host.file(str(key)).mode & 0o077 == 0, f"{key} is readable by others"
