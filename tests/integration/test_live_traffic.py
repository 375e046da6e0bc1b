"""Tenant isolation and readiness proven on the sandbox's real node, with packets and processes.

GM0344 (the session's `deployed` tenant, every app) and GM0363 (objecttypen alone, deployed here:
the other side of each refusal needs one app, not six) run on the real node with the stand-in images: a stand-in is Ready only while it reaches its own database
with its generated password and its Redis, through the NetworkPolicies. The checks run commands
inside running containers (`kubectl exec`) and in probe pods: one in an unrestricted namespace
(the control: it shows that a refused connection is the policy's doing, not a broken route), one in
the ingress controller's namespace. A TCP listener of the test on the node's address stands for
"an address outside the cluster".
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cgkit import node_manifests as nm
from cgkit import sandbox, toolchain
from tests.deadlines import GONE_S, POD_S, wait_until
from tests.integration.conftest import ENV, ROOT, cgkit
from tests.integration.small_fleet import files_put_back, forget_tenants, small_tenant

pytestmark = pytest.mark.integration
OWN, OTHER = "gm0344", "gm0363"
OTHER_APP = "deploy/objecttypen"  # GM0363's one app
PROBE_NS = "cgkit-live-probe"
INGRESS_NS = "cgkit-ingress"  # environments/sandbox/environment.yaml ingress.controller_namespace
CONNECT = ("import socket,sys\n"
           "try:\n"
           "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4).close()\n"
           "except OSError as e:\n"
           "    print('refused:', type(e).__name__); sys.exit(1)\n"
           "print('connected')\n")


def kubectl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the toolchain's kubectl against the sandbox (admin)."""
    return subprocess.run([str(toolchain.bin_dir() / "kubectl"), "--kubeconfig",
                           str(sandbox.kubeconfig_path(ROOT)), *args],
                          capture_output=True, text=True, timeout=timeout)


def exec_in(namespace: str, target: str, *command: str) -> subprocess.CompletedProcess:
    """Run ``command`` in the first container of ``target`` (``deploy/x`` or ``pod/x``)."""
    return kubectl("exec", "-n", namespace, target, "--", *command)


def can_connect(namespace: str, target: str, host: str, port: int) -> bool:
    """Whether a TCP connection from inside ``target`` to ``host:port`` opens (4 s timeout)."""
    out = exec_in(namespace, target, "python3", "-c", CONNECT, host, str(port))
    assert out.returncode in (0, 1), f"exec in {namespace}/{target} failed: {out.stderr.strip()}"
    return out.returncode == 0


def probe_pod(api: client.ApiClient, namespace: str, name: str = "probe") -> str:
    """Create a long-running probe pod (stand-in image, PSS restricted) and wait until it runs."""
    from cgkit import sandbox_images

    core = client.CoreV1Api(api)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"cgkit.io/probe": "true"}},
           "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "probe", "image": sandbox_images.ref("standin"),
                                    "command": ["sleep", "3600"],
                                    "resources": {"requests": {"cpu": "5m", "memory": "16Mi"},
                                                  "limits": {"cpu": "100m", "memory": "64Mi"}},
                                    "securityContext": {"allowPrivilegeEscalation": False,
                                                        "capabilities": {"drop": ["ALL"]}}}]}}
    core.create_namespaced_pod(namespace, pod)
    wait_until(lambda: core.read_namespaced_pod(name, namespace).status.phase == "Running", POD_S,
               f"probe pod {namespace}/{name} Running")
    return f"pod/{name}"


@pytest.fixture(scope="module")
def tenants(deployed: Path, api: client.ApiClient) -> Iterator[Path]:
    """GM0344 (session) and GM0363 (one app) deployed; a probe namespace without policies; removed
    after, GM0363's checked-in file put back."""
    core = client.CoreV1Api(api)
    with files_put_back(deployed, (OTHER.upper(),)):
        small_tenant(deployed, OTHER.upper())
        assert cgkit("up", "--env", ENV, OTHER.upper(), "--yes") == 0
        core.create_namespace({"metadata": {"name": PROBE_NS}})
        try:
            yield deployed
        finally:
            core.delete_namespace(PROBE_NS)
            for ns in (INGRESS_NS, OWN):
                try:
                    core.delete_namespaced_pod("probe", ns, grace_period_seconds=0)
                except ApiException:
                    pass
            cgkit("destroy", "--env", ENV, OTHER.upper(), "--allow-data-loss", OTHER.upper(), "--yes")
            forget_tenants(deployed, (OTHER.upper(),))


@pytest.fixture(scope="module")
def probe(tenants: Path, api: client.ApiClient) -> str:
    return probe_pod(api, PROBE_NS)


def test_every_pod_runs_on_the_real_node_and_every_stand_in_is_ready(tenants: Path, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    # GM0344: 6 web, 5 workers, 3 beats, db, redis; GM0363: objecttypen's web, db, redis
    for ns, least in ((OWN, 14), (OTHER, 3)):
        pods = [p for p in core.list_namespaced_pod(ns).items  # Job pods (provision, migrate, setup) end
                if not any(o.kind == "Job" for o in p.metadata.owner_references or [])]
        assert len(pods) >= least, f"{ns}: {len(pods)} pods"
        for pod in pods:
            assert pod.spec.node_name == nm.NODE_NAME, f"{ns}/{pod.metadata.name} on {pod.spec.node_name}"
            ready = {c.type: c.status for c in pod.status.conditions or []}.get("Ready")
            assert ready == "True", f"{ns}/{pod.metadata.name} not Ready"


def test_the_provisioning_job_really_completed(tenants: Path, api: client.ApiClient) -> None:
    jobs = client.BatchV1Api(api).list_namespaced_job(OWN).items
    provision = [j for j in jobs if j.metadata.name.startswith("postgresql-provision")]
    assert provision and all(j.status.succeeded == 1 for j in provision)


def test_another_tenant_cannot_reach_this_tenants_database_or_redis(tenants: Path, probe: str) -> None:
    for host, port in ((f"postgresql.{OWN}.svc.cluster.local", 5432), (f"redis.{OWN}.svc.cluster.local", 6379)):
        assert can_connect(OWN, "deploy/openzaak", host.split(".")[0], port), f"{OWN}'s own app: {host}"
        assert not can_connect(OTHER, OTHER_APP, host, port), f"{OTHER} reached {host}"
        # not even from a namespace without egress rules: gm0344's own ingress policy refuses it
        assert not can_connect(PROBE_NS, probe, host, port), f"{PROBE_NS} reached {host}"


def test_an_app_role_cannot_log_in_to_another_apps_database(tenants: Path) -> None:
    login = ("import os,sys,psycopg2\n"
             "try:\n"
             "    psycopg2.connect(host='postgresql', dbname=sys.argv[1], user=os.environ['DB_USER'],\n"
             "                     password=os.environ['DB_PASSWORD'], connect_timeout=4).close()\n"
             "except psycopg2.OperationalError as e:\n"
             "    print(str(e).strip()); sys.exit(1)\n")
    own = exec_in(OWN, "deploy/openzaak", "python3", "-c", login, "openzaak")
    assert own.returncode == 0, own.stdout + own.stderr
    other = exec_in(OWN, "deploy/openzaak", "python3", "-c", login, "opennotificaties")
    assert other.returncode == 1 and "permission denied for database" in other.stdout, other.stdout + other.stderr


def accept_until_closed(listener: socket.socket) -> None:
    """Accept and drop connections until the test closes ``listener`` (the tenant's attempt must
    never arrive, so the last accept ends with the close)."""
    try:
        while True:
            listener.accept()[0].close()
    except OSError:
        return


def test_tenant_pods_resolve_cluster_dns_but_reach_neither_the_host_nor_the_api_server(
        tenants: Path, probe: str) -> None:
    resolved = exec_in(OWN, "deploy/openzaak", "python3", "-c",
                       "import socket; print(socket.gethostbyname('redis.gm0344.svc.cluster.local'))")
    assert resolved.returncode == 0 and resolved.stdout.strip().startswith("10.96."), resolved.stderr
    listener = socket.create_server((nm.NODE_IP, 0))
    port = listener.getsockname()[1]
    threading.Thread(target=accept_until_closed, args=(listener,), daemon=True).start()
    try:
        assert can_connect(PROBE_NS, probe, nm.NODE_IP, port), "control: an unrestricted pod reaches the host"
        assert not can_connect(OWN, "deploy/openzaak", nm.NODE_IP, port), "a tenant pod reached the host"
        assert can_connect(PROBE_NS, probe, nm.KUBERNETES_SERVICE_IP, 443), "control: the API server answers"
        assert not can_connect(OWN, "deploy/openzaak", nm.KUBERNETES_SERVICE_IP, 443), "a tenant reached the API server"
    finally:
        listener.close()


def test_only_the_ingress_controllers_namespace_reaches_the_web_port(tenants: Path, api: client.ApiClient,
                                                                      probe: str) -> None:
    ingress = probe_pod(api, INGRESS_NS)
    fetch = ("import http.client,sys\n"
             "c = http.client.HTTPConnection(sys.argv[1], 80, timeout=4)\n"
             "c.request('GET', '/_healthz/readyz/', headers={'Host': 'openzaak'})\n"
             "print(c.getresponse().status)\n")
    answered = exec_in(INGRESS_NS, ingress, "python3", "-c", fetch, f"openzaak.{OWN}.svc.cluster.local")
    assert answered.returncode == 0 and answered.stdout.strip() == "200", answered.stdout + answered.stderr
    assert not can_connect(PROBE_NS, probe, f"openzaak.{OWN}.svc.cluster.local", 80)
    assert not can_connect(OTHER, OTHER_APP, f"openzaak.{OWN}.svc.cluster.local", 80)


def test_containers_run_as_non_root_under_the_runtime_default_seccomp_filter(tenants: Path) -> None:
    for target in ("deploy/openzaak", "deploy/openzaak-worker", "statefulset/postgresql", "statefulset/redis"):
        status = exec_in(OWN, target, "cat", "/proc/1/status")
        assert status.returncode == 0, status.stderr
        fields = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
        assert fields["Seccomp"].strip() == "2", f"{target}: seccomp mode {fields['Seccomp'].strip()} (2 = filter)"
        assert fields["Uid"].split()[0] != "0", f"{target} runs as root"
        assert fields["NoNewPrivs"].strip() == "1", f"{target} may gain privileges"


def test_a_second_up_changes_nothing_on_the_real_node(tenants: Path) -> None:
    from cgkit import engine
    from cgkit.conventions import stack_name

    settings = engine.EngineSettings(root=tenants)
    stack = engine.select_stack(settings, stack_name(ENV, OTHER.upper()))
    result = engine.preview(stack, settings, engine.Operation(on_output=lambda _: None))
    assert set(result.changes) == {"same"}, result.changes


def test_destroy_stops_the_tenants_pods(tenants: Path, api: client.ApiClient) -> None:
    assert cgkit("destroy", "--env", ENV, OTHER.upper(), "--allow-data-loss", OTHER.upper(), "--yes") == 0
    core = client.CoreV1Api(api)
    wait_until(lambda: OTHER not in {n.metadata.name for n in core.list_namespace().items}, GONE_S,
               f"namespace {OTHER} gone after destroy")
    assert not running_containers(OTHER), f"containers of {OTHER} still run on the node"


def running_containers(namespace: str) -> list[str]:
    """IDs of containers of pods in ``namespace`` whose task runs on the node (containerd's view)."""
    def ctr(*args: str) -> str:
        return subprocess.run(["ctr", "--address", str(sandbox.paths(ROOT).node.socket), "-n", "k8s.io", *args],
                              capture_output=True, text=True, check=True).stdout

    ours = set(ctr("containers", "ls", "--quiet",
                   f'labels."io.kubernetes.pod.namespace"=={namespace}').split())
    running = {line.split()[0] for line in ctr("tasks", "ls").splitlines()[1:] if "RUNNING" in line}
    return sorted(ours & running)
