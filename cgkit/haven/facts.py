"""What a Haven check needs to know about a live cluster, gathered once, read-only.

``gather(api, local_node)`` asks the API server (nodes, the ``default/kubernetes`` EndpointSlices,
access reviews, CRDs, APIServices, Deployments, DaemonSets, volumes, StorageClasses), makes one
request with made-up HTTP Basic credentials, and asks the Go module proxy for the newest Kubernetes
release. The verdicts (cgkit/haven/verdicts.py) are pure functions of the result, so they are
tested without a cluster.

Nothing here changes the cluster: the access reviews are evaluated and not stored (that is how
the Kubernetes authorization API defines them).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from kubernetes import client

from cgkit.sandbox_manifests import KWOK_NODE_ANNOTATION

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
ZONE_LABEL = "topology.kubernetes.io/zone"
#: where the newest Kubernetes release is read: k8s.io/api is tagged v0.N.x for Kubernetes 1.N
GO_PROXY_K8S_API = "k8s.io/api/@v/list"
LSM_FILE = Path("/sys/kernel/security/lsm")


@dataclass(frozen=True)
class NodeFacts:
    """One Node. ``lsms``: the kernel's active Linux security modules when cgkit could read them
    (only for the sandbox's real node, which is this host), else None."""

    name: str
    fake: bool
    control_plane: bool
    ready: bool
    zone: str | None
    os_image: str
    addresses: tuple[tuple[str, str], ...]  # (type, address), e.g. ("InternalIP", "10.244.0.1")
    lsms: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Workload:
    """A Deployment or DaemonSet: where it is, its container images, and whether it is complete
    (a Deployment available; a DaemonSet with a Ready pod on every node it wants one on)."""

    namespace: str
    name: str
    images: tuple[str, ...]
    complete: bool


@dataclass(frozen=True)
class ClusterFacts:
    """Everything the verdicts read. Versions as the API server reports them (``v1.35.4``);
    ``latest_minor`` is the newest Kubernetes minor released (e.g. 37), None when the Go module
    proxy could not be asked (``latest_error`` says why)."""

    nodes: tuple[NodeFacts, ...]
    api_server_addresses: tuple[str, ...]
    server_version: str
    latest_minor: int | None
    latest_error: str
    cluster_admin: bool
    rbac_served: bool
    anonymous_may_list_secrets: bool
    basic_auth_status: int | str  # the HTTP status, or why no answer came
    rwx_volumes: tuple[str, ...]  # ReadWriteMany PVs whose storage can reach more than one node
    node_local_rwx: int  # ReadWriteMany PVs on hostPath or local storage: one node's disk, whatever they declare
    provisioners: tuple[str, ...]
    crds: frozenset[str]
    deployments: tuple[Workload, ...]
    daemonsets: tuple[Workload, ...]
    apiservices: dict[str, bool] = field(default_factory=dict)  # name -> Available


def gather(api: client.ApiClient, local_node: str | None = None) -> ClusterFacts:
    """Ask the cluster behind ``api`` everything the Haven verdicts need.

    Args:
        api: a client with cluster-admin rights (the checker's own first check says whether it has).
        local_node: the name of a node that is this host (the sandbox's real node), whose kernel
            can be inspected directly; None for any other cluster.

    Raises:
        kubernetes.client.ApiException: the API server refused a read (the caller probed access first).
    """
    core = client.CoreV1Api(api)
    latest, latest_error = _latest_minor()
    return ClusterFacts(
        nodes=tuple(_node(n, local_node) for n in core.list_node().items),
        api_server_addresses=_api_server_addresses(api),
        server_version=client.VersionApi(api).get_code().git_version,
        latest_minor=latest, latest_error=latest_error,
        cluster_admin=_self_review(api, {"verb": "*", "resource": "*", "group": "*"}),
        rbac_served=any(g.name == "rbac.authorization.k8s.io" for g in client.ApisApi(api).get_api_versions().groups),
        anonymous_may_list_secrets=_anonymous_review(api),
        basic_auth_status=_basic_auth_status(api.configuration),
        **_rwx_volumes(core.list_persistent_volume().items),
        provisioners=tuple(sc.provisioner for sc in client.StorageV1Api(api).list_storage_class().items),
        crds=frozenset(c.metadata.name for c in
                       client.ApiextensionsV1Api(api).list_custom_resource_definition().items),
        deployments=tuple(_deployment(d) for d in client.AppsV1Api(api).list_deployment_for_all_namespaces().items),
        daemonsets=tuple(_daemonset(d) for d in client.AppsV1Api(api).list_daemon_set_for_all_namespaces().items),
        apiservices={s.metadata.name: _condition(s.status, "Available") for s in
                     client.ApiregistrationV1Api(api).list_api_service().items},
    )


def _rwx_volumes(volumes: list[client.V1PersistentVolume]) -> dict:
    """``rwx_volumes`` and ``node_local_rwx`` of ClusterFacts from the PersistentVolumes: a hostPath or
    local volume that declares ReadWriteMany is still one node's disk, so it is only counted."""
    rwx = [v for v in volumes if "ReadWriteMany" in (v.spec.access_modes or [])]
    local = [v for v in rwx if v.spec.host_path or v.spec.local]
    return {"rwx_volumes": tuple(v.metadata.name for v in rwx if v not in local), "node_local_rwx": len(local)}


def _condition(status, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in (status.conditions or []) if status)


def _node(n: client.V1Node, local_node: str | None) -> NodeFacts:
    labels, annotations = n.metadata.labels or {}, n.metadata.annotations or {}
    return NodeFacts(
        name=n.metadata.name,
        fake=annotations.get(KWOK_NODE_ANNOTATION[0]) == KWOK_NODE_ANNOTATION[1],
        control_plane=CONTROL_PLANE_LABEL in labels,
        ready=_condition(n.status, "Ready"),
        zone=labels.get(ZONE_LABEL),
        os_image=(n.status.node_info.os_image if n.status and n.status.node_info else "") or "",
        addresses=tuple((a.type, a.address) for a in (n.status.addresses or [])),
        lsms=host_lsms() if n.metadata.name == local_node else None,
    )


def _deployment(d: client.V1Deployment) -> Workload:
    return Workload(d.metadata.namespace, d.metadata.name, _images(d.spec.template),
                    _condition(d.status, "Available"))


def _daemonset(d: client.V1DaemonSet) -> Workload:
    wanted, ready = d.status.desired_number_scheduled or 0, d.status.number_ready or 0
    return Workload(d.metadata.namespace, d.metadata.name, _images(d.spec.template), wanted > 0 and ready == wanted)


def _images(template: client.V1PodTemplateSpec) -> tuple[str, ...]:
    return tuple(c.image or "" for c in template.spec.containers)


def _api_server_addresses(api: client.ApiClient) -> tuple[str, ...]:
    """One address per API server: the endpoints of the ``default/kubernetes`` Service."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items
    return tuple(sorted({a for s in slices for e in (s.endpoints or []) for a in e.addresses}))


def _self_review(api: client.ApiClient, attributes: dict) -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attributes}})
    return bool(review.status.allowed)


def _anonymous_review(api: client.ApiClient) -> bool:
    """Whether the authorizer lets an unauthenticated user list Secrets (true only without RBAC, or
    with a binding that no cluster should have)."""
    review = client.AuthorizationV1Api(api).create_subject_access_review({"spec": {
        "user": "system:anonymous", "groups": ["system:unauthenticated"],
        "resourceAttributes": {"verb": "list", "resource": "secrets"}}})
    return bool(review.status.allowed)


def _basic_auth_status(configuration: client.Configuration) -> int | str:
    """The status of ``GET /api`` sent with made-up HTTP Basic credentials and no client certificate
    (a fresh connection, so the kubeconfig's own credentials play no part)."""
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=configuration.ssl_ca_cert,
                               timeout=urllib3.Timeout(connect=5, read=10), retries=False)
    made_up = base64.b64encode(b"cgkit-haven-probe:not-a-password").decode()
    try:
        return pool.request("GET", f"{configuration.host}/api", headers={"Authorization": f"Basic {made_up}"}).status
    except urllib3.exceptions.HTTPError as failed:
        return f"no answer: {failed}"


def _latest_minor() -> tuple[int | None, str]:
    """The newest Kubernetes minor version released, from the Go module proxy's list of k8s.io/api
    tags (v0.N.x, N = the minor; pre-releases left out), or (None, why not)."""
    proxy = next((p for p in os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")
                  if p.startswith("http")), "https://proxy.golang.org")
    url = f"{proxy.rstrip('/')}/{GO_PROXY_K8S_API}"
    try:
        with urllib.request.urlopen(url, timeout=10) as listing:
            tags = listing.read().decode().split()
    except OSError as unreachable:
        return None, f"{url} did not answer: {unreachable}"
    minors = [int(m.group(1)) for t in tags if (m := re.fullmatch(r"v0\.(\d+)\.\d+", t))]
    return (max(minors), f"from {url}") if minors else (None, f"{url} lists no release")


def host_lsms() -> tuple[str, ...] | None:
    """This host's active Linux security modules (``/sys/kernel/security/lsm``), or None when they
    cannot be read. Where securityfs is not mounted at its usual place (a container, a minimal
    init) and cgkit runs as root, it is mounted read-only on a temporary directory for the read."""
    if LSM_FILE.exists():
        return tuple(LSM_FILE.read_text().strip().split(","))
    if os.geteuid() != 0:
        return None
    with tempfile.TemporaryDirectory(prefix="cgkit-securityfs-") as mnt:
        if subprocess.run(["mount", "-t", "securityfs", "-o", "ro", "securityfs", mnt],
                          capture_output=True).returncode != 0:
            return None
        try:
            return tuple((Path(mnt) / "lsm").read_text().strip().split(","))
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
