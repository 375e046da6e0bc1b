"""The fleet as Kubernetes Jobs on the real node (issue 11): tenants rolled out by runner pods against
the object store, converged, a runner pod killed mid-`up` whose lock the next run clears, and the
runners' rights checked by the API server itself.

Uses test_state_backend's fixtures: the session's stacks migrated to a bucket of a store that also
listens on the node's bridge (where the pods reach it), and the environment file pointed at it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from cgkit import locks
from cgkit.fleet import in_cluster
from cgkit.fleet.report import load_report
from tests.deadlines import COMMAND_S, finish
from tests.integration.conftest import ENV, cgkit
from tests.integration.small_fleet import files_put_back, small_tenant
from tests.integration.test_fleet import wait_until_gone
from tests.integration.test_state_backend import BUCKET, on_s3, store  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
PAIR = ("GM0014", "GM0363")  # rolled out together by two pods
KILLED = "GM0153"  # its runner is killed mid-up


@pytest.fixture(scope="module", autouse=True)
def _files_put_back(deployed: Path) -> Iterator[None]:
    """GM0363 is a checked-in municipality that test_live_traffic deploys whole: this module's
    one-app files of its codes go once it ends."""
    with files_put_back(deployed, (*PAIR, KILLED)):
        yield


def _latest_report(root: Path) -> dict:
    runs = sorted((root / ".cgkit" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return load_report(root, str(runs[-1]))


def _fleet_jobs(api: client.ApiClient) -> list[str]:
    return [job.metadata.name for job in client.BatchV1Api(api).list_namespaced_job(in_cluster.NAMESPACE).items]


def test_runner_pods_roll_out_two_tenants_and_a_second_preview_changes_nothing(on_s3, api: client.ApiClient) -> None:
    project, _ = on_s3
    for code in PAIR:
        small_tenant(project, code)
    assert cgkit("fleet", "up", "--env", ENV, *PAIR, "--in-cluster", "--parallel", "2", "--yes") == 0
    up = _latest_report(project)
    assert up["options"]["in_cluster"] is True
    assert {s["code"]: s["status"] for s in up["stacks"]} == {code: "succeeded" for code in PAIR}
    apps = client.AppsV1Api(api)
    for code in PAIR:
        log = (project / ".cgkit" / "runs" / up["run_id"] / f"{ENV}.{code.lower()}.log").read_text()
        assert "Resources:" in log, log[-2000:]
        ready = apps.read_namespaced_deployment("objecttypen", code.lower()).status.ready_replicas
        assert ready and ready >= 1, f"{code}: objecttypen is not Ready"
    assert _fleet_jobs(api) == [], "each wave's Job is deleted once its results are read"
    assert cgkit("fleet", "preview", "--env", ENV, *PAIR, "--in-cluster") == 0
    preview = _latest_report(project)
    assert all(set(s["changes"]) <= {"same"} for s in preview["stacks"]), preview["stacks"]


def _can(api: client.ApiClient, verb: str, resource: str, group: str = "", namespace: str | None = None) -> bool:
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{in_cluster.NAMESPACE}:{in_cluster.RUNNER}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{in_cluster.NAMESPACE}", "system:authenticated"],
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace=namespace)))
    return client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed


def test_the_runner_may_deploy_tenants_but_not_take_the_cluster(on_s3, api: client.ApiClient) -> None:
    assert _can(api, "create", "namespaces") and _can(api, "create", "deployments", "apps", "gm0014")
    assert _can(api, "create", "roles", "rbac.authorization.k8s.io", "gm0014")
    for verb, resource, group in (("create", "clusterrolebindings", "rbac.authorization.k8s.io"),
                                  ("escalate", "clusterroles", "rbac.authorization.k8s.io"),
                                  ("create", "pods/exec", ""), ("get", "nodes", ""), ("create", "pods", "")):
        assert not _can(api, verb, resource, group, "gm0014"), f"the runner may {verb} {resource}"


def _runner_main_pid() -> int | None:
    """The host pid of a runner pod's main process (python -m cgkit.fleet.pod): the pod runs here."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"cgkit.fleet.pod" in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except OSError:
            continue
    return None


def _lock_of(backend: str, stack: str) -> list[locks.Lock]:
    return [lock for lock in locks.backend_locks(backend) if lock.stack == stack]


def test_a_runner_pod_killed_mid_up_leaves_a_lock_that_the_resumed_run_clears(on_s3, store) -> None:
    project, _ = on_s3
    small_tenant(project, KILLED)
    backend, stack = store.backend_url(BUCKET), f"{ENV}.{KILLED.lower()}"
    run = subprocess.Popen([str(Path(sys.executable).parent / "cgkit"), "fleet", "up", "--env", ENV, KILLED,
                            "--in-cluster", "--yes"], env=os.environ.copy(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + COMMAND_S
        while not (_lock_of(backend, stack) and (pid := _runner_main_pid())):
            assert run.poll() is None, f"the run ended before its engine held the lock:\n{run.stdout.read()}"
            assert time.monotonic() < deadline, f"no runner pod took the stack's lock in {COMMAND_S:.0f}s"
            time.sleep(1)
        os.kill(pid, signal.SIGKILL)  # the pod's main process: its namespace's engine dies with it
        output, _ = finish(run)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, output
    killed = _latest_report(project)
    assert killed["stacks"][0]["error_kind"] == "runner-pod-failed", killed["stacks"][0]
    assert _lock_of(backend, stack), "an engine killed with SIGKILL leaves its lock"
    assert cgkit("fleet", "up", "--env", ENV, "--in-cluster", "--resume", killed["run_id"], "--yes") == 0
    assert not _lock_of(backend, stack)
    # Previewed where it was deployed: a runner pod reaches the cluster through its ServiceAccount, so
    # a preview from this machine (the sandbox's kubeconfig) would differ in the provider's config.
    assert cgkit("fleet", "preview", "--env", ENV, KILLED, "--in-cluster") == 0
    changes = _latest_report(project)["stacks"][0]["changes"]
    assert set(changes) <= {"same"}, f"not converged after the resumed run: {changes}"


def test_runner_pods_destroy_what_they_deployed(on_s3, api: client.ApiClient) -> None:
    codes = (*PAIR, KILLED)
    assert cgkit("fleet", "destroy", "--env", ENV, *codes, "--in-cluster", "--allow-data-loss", ENV, "--yes") == 0
    core = client.CoreV1Api(api)
    for code in codes:
        wait_until_gone(lambda: core.read_namespace(code.lower()))
