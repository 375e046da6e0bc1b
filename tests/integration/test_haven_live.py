"""`cgkit haven check` against the running sandbox: every check's verdict matches what the sandbox
is (one real node in one zone, one API server, this host's kernel, no cert-manager, no log agent, no
metrics-server), and a live change to the cluster (anonymous may list Secrets) turns its check to
failed. The verdict logic itself is unit-tested in tests/unit/test_haven.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from cgkit import node_manifests as nm
from cgkit.cli.exit_codes import ExitStatus
from tests.integration.conftest import ENV, cgkit

pytestmark = pytest.mark.integration

#: Security modules that make HAVEN-06 pass on their own (the Haven standard's list; Talos and
#: Flatcar are OS images, not modules).
HARDENING = ("selinux", "apparmor", "grsecurity", "lkrg")
ANONYMOUS_READER = "cgkit-test-anonymous-reads-secrets"


def haven_check(out: Path) -> tuple[int, dict[str, dict]]:
    """Run `cgkit haven check --env sandbox --format json --out OUT`; the exit status and the checks by id."""
    status = cgkit("haven", "check", "--env", ENV, "--format", "json", "--out", str(out))
    return status, {c["id"]: c for c in json.loads(out.read_text())["checks"]}


@pytest.fixture(scope="module")
def checks(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    status, found = haven_check(tmp_path_factory.mktemp("haven") / "haven.json")
    assert status == ExitStatus.FAILED  # the one-node sandbox is not a Haven cluster, and says so
    return found


@pytest.mark.parametrize(("check", "state", "evidence"), [
    ("HAVEN-01", "not verifiable", "cgkit is not that binary"),
    ("HAVEN-02", "passed", "every verb on every resource"),
    ("HAVEN-03", "failed", "1 zone(s) over 1 real node(s)"),
    ("HAVEN-04", "failed", "1 API server(s) behind default/kubernetes"),
    ("HAVEN-05", "failed", f"1 Ready worker node(s): {nm.NODE_NAME}"),
    ("HAVEN-07", "passed", "every address of 1 real node(s) is private"),
    ("HAVEN-09", "passed", "system:anonymous may not list Secrets"),
    ("HAVEN-10", "passed", "answered 401"),
    ("HAVEN-11", "failed", "ReadWriteMany volumes: none ("),  # the sandbox pool: hostPath, counted only
    ("HAVEN-12", "not verifiable", "conformance"),
    ("HAVEN-13", "failed", "certificates.cert-manager.io absent"),
    ("HAVEN-14", "failed", "Ready on every node: none"),
    ("HAVEN-15", "failed", "v1beta1.metrics.k8s.io absent"),
    ("HAVEN-16", "not verifiable", "cgkit is not that binary"),
])
def test_each_verdict_is_what_the_sandbox_is(checks: dict[str, dict], check: str, state: str, evidence: str) -> None:
    assert checks[check]["state"] == state, checks[check]
    assert evidence in checks[check]["evidence"], checks[check]


def test_the_real_nodes_kernel_is_read_and_judged(checks: dict[str, dict]) -> None:
    lsm = Path("/sys/kernel/security/lsm")
    found = checks["HAVEN-06"]
    assert found["evidence"].startswith(f"{nm.NODE_NAME}: active security modules "), found
    modules = found["evidence"].split("active security modules ", 1)[1].split(", ")
    if lsm.exists():  # securityfs mounted here: the host's own list, word for word
        assert modules == lsm.read_text().strip().split(","), found
    assert found["state"] == ("passed" if set(modules) & set(HARDENING) else "failed"), found


def test_the_version_is_judged_against_the_newest_release(checks: dict[str, dict], api: client.ApiClient) -> None:
    server = client.VersionApi(api).get_code().git_version
    found = checks["HAVEN-08"]
    assert found["evidence"].startswith(f"server {server}"), found
    assert found["state"] in ("passed", "not verifiable"), found  # 1.35: within 3 minors of any 1.3x newest


@pytest.fixture
def anonymous_reads_secrets(api: client.ApiClient) -> Iterator[None]:
    """A ClusterRoleBinding letting system:anonymous list Secrets (the hole HAVEN-09 looks for); removed after."""
    rbac = client.RbacAuthorizationV1Api(api)
    meta = client.V1ObjectMeta(name=ANONYMOUS_READER)
    rbac.create_cluster_role(client.V1ClusterRole(metadata=meta, rules=[
        client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])]))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=meta, role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                                 name=ANONYMOUS_READER),
        subjects=[client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User", name="system:anonymous")]))
    try:
        yield
    finally:
        rbac.delete_cluster_role_binding(ANONYMOUS_READER)
        rbac.delete_cluster_role(ANONYMOUS_READER)


def test_letting_anonymous_list_secrets_fails_the_rbac_check(checks: dict[str, dict], anonymous_reads_secrets: None,
                                                             tmp_path: Path) -> None:
    status, found = haven_check(tmp_path / "haven.json")
    assert status == ExitStatus.FAILED
    assert found["HAVEN-09"]["state"] == "failed"
    assert "system:anonymous may list Secrets" in found["HAVEN-09"]["evidence"]


def test_the_text_report_ends_with_the_counts(project: Path, capsys) -> None:
    assert cgkit("haven", "check", "--env", ENV) == ExitStatus.FAILED
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Haven checks of https://")
    assert len(lines) == 1 + 16 + 1 and lines[-1].endswith("not verifiable")


def test_the_policy_report_carries_the_same_verdicts(checks: dict[str, dict], project: Path, tmp_path: Path) -> None:
    cgkit("policy", "report", "--env", ENV, "--haven", "--format", "json", "--out", str(tmp_path))
    data = json.loads((tmp_path / f"policy-report-{ENV}.json").read_text())
    assert {c["id"]: c["state"] for c in data["haven"]["checks"]} == {i: c["state"] for i, c in checks.items()}
    assert data["summary"]["haven_failed"] == sum(c["state"] == "failed" for c in checks.values()) >= 8


def test_an_unwritable_out_file_is_one_error_line(project: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    target = tmp_path / "ro" / "haven.json" if os.geteuid() != 0 else Path("/proc/version")  # root writes anywhere else
    assert cgkit("haven", "check", "--env", ENV, "--out", str(target)) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert f"error: {target}: cannot write the result" in err and "Traceback" not in err
