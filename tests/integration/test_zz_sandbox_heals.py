"""A sandbox that heals (issue 10): every process of the sandbox is killed in turn, and `cgkit sandbox
up` brings it back with every node and pod Ready, the stacks' state kept and nothing orphaned.

The processes are the control plane that kwokctl runs (etcd, the API server, the controller-manager,
the scheduler, kwok-controller) and the real node's daemons (the kubelet, containerd, kube-proxy,
kube-router). Each is ended with SIGKILL, as a crash or the OOM killer would, with the session's platform and GM0344
(every app) running. After each `sandbox up`:

* exactly one process of each name runs (a restart that left the old one behind, or started a
  second, is an orphan);
* every Node is Ready, every Pod of every namespace Running and Ready, every Job complete;

and after the last one, containerd runs no container whose Pod is gone, and a refreshed `cgkit up`
of GM0344 finds no change to make: the engine's state was kept and equals the cluster.

These tests change the sandbox's processes, so the module runs after every other but the final
destroy (tests/integration/conftest.py LAST).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from cgkit import node, sandbox
from tests.deadlines import seconds
from tests.integration.conftest import CODE, ENV, ROOT, cgkit

pytestmark = pytest.mark.integration
NS = CODE.lower()
CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"]
NODE_DAEMONS = ["kubelet", "containerd", "kube-proxy", "kube-router"]
PODS_READY_S = seconds(300)  # a killed kubelet or containerd restarts probes; the suite's slowest start is ~90 s


def pid_of(name: str) -> int:
    """The one live process called ``name`` of the sandbox (control plane or node daemon)."""
    pids = [pid for pid, found in running() if found == name]
    assert len(pids) == 1, f"expected one {name} process of the sandbox, found {pids}"
    return pids[0]


def running() -> list[tuple[int, str]]:
    """(pid, name) of the sandbox's control-plane processes and the node's daemons (not its shims)."""
    daemons = [(pid, name) for pid, name in node.processes(sandbox.paths(ROOT).node) if name in NODE_DAEMONS]
    return sandbox.processes(ROOT) + daemons


def kill(name: str) -> None:
    """SIGKILL the sandbox's ``name`` and wait until its process is gone."""
    pid = pid_of(name)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + seconds(30)
    while any(found == pid for found, _name in running()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(found != pid for found, _name in running()), f"{name} ({pid}) survived SIGKILL"


def sandbox_up() -> subprocess.CompletedProcess:
    """`cgkit sandbox up` as a user runs it (its own process, the sandbox dir from the environment)."""
    return subprocess.run([str(Path(sys.executable).parent / "cgkit"), "sandbox", "up"],
                          capture_output=True, text=True, timeout=seconds(900), env=os.environ)


def unready_pods(api: client.ApiClient) -> list[str]:
    """Pods of any namespace that are not Running and Ready, and Jobs that are not complete.
    A Job's own Pods are judged through the Job (a retried Pod may have failed on its way there)."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    problems = [f"Job {j.metadata.namespace}/{j.metadata.name} not complete"
                for j in batch.list_job_for_all_namespaces().items if not (j.status.succeeded or 0)]
    for pod in core.list_pod_for_all_namespaces().items:
        if any(ref.kind == "Job" for ref in pod.metadata.owner_references or []):
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if pod.status.phase != "Running" or not ready:
            problems.append(f"Pod {pod.metadata.namespace}/{pod.metadata.name} {pod.status.phase}"
                            f"{'' if ready else ', not Ready'}")
    return problems


def wait_pods_ready(api: client.ApiClient) -> None:
    deadline = time.monotonic() + PODS_READY_S
    while (problems := unready_pods(api)) and time.monotonic() < deadline:
        time.sleep(3)
    assert not problems, f"not converged {PODS_READY_S:.0f}s after sandbox up: {problems}"


@pytest.mark.parametrize("name", CONTROL_PLANE + NODE_DAEMONS)
def test_sandbox_up_brings_back_a_killed_process(deployed: Path, api: client.ApiClient, name: str) -> None:
    wait_pods_ready(api)  # the starting point: a converged sandbox
    kill(name)

    healed = sandbox_up()

    assert healed.returncode == 0, f"sandbox up after killing {name} failed:\n{healed.stdout}\n{healed.stderr}"
    assert sorted(found for _pid, found in running()) == sorted(CONTROL_PLANE + NODE_DAEMONS), \
        f"after killing {name}: {running()}"
    st = sandbox.status(ROOT)
    assert st.running and st.nodes_ready == st.nodes_total >= 1, st
    wait_pods_ready(api)


def test_after_every_kill_no_container_is_orphaned_and_the_state_is_kept(
        deployed: Path, api: client.ApiClient, capsys) -> None:
    live = {p.metadata.uid for p in client.CoreV1Api(api).list_pod_for_all_namespaces().items}
    orphans = [c for c in running_containers() if c["pod_uid"] not in live]
    assert not orphans, f"containers whose Pod is gone: {orphans}"

    capsys.readouterr()
    assert cgkit("up", "--env", ENV, CODE, "--yes") == 0
    assert f"up of sandbox.{NS}: no changes" in capsys.readouterr().out


def running_containers() -> list[dict[str, str]]:
    """The node's running containers (containerd's k8s.io namespace) with the Pod UID the kubelet
    labelled each with: ``[{"id": ..., "pod_uid": ...}]``."""
    socket = str(sandbox.paths(ROOT).node.socket)

    def ctr(*args: str) -> str:
        return subprocess.run(["ctr", "--address", socket, "--namespace", "k8s.io", *args],
                              capture_output=True, text=True, check=True, timeout=60).stdout

    tasks = [line.split() for line in ctr("tasks", "ls").splitlines()[1:]]
    found = []
    for task_id, _pid, state in tasks:
        if state == "RUNNING":
            labels = json.loads(ctr("containers", "info", task_id))["Labels"]
            found.append({"id": task_id, "pod_uid": labels.get("io.kubernetes.pod.uid", "<no pod label>")})
    assert found, "containerd runs no container at all: the check would prove nothing"
    return found
