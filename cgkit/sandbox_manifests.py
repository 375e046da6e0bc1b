"""What the local sandbox cluster is made of, as plain data (no I/O): pure functions returning dicts.

Used by cgkit.sandbox, which writes them to files or applies them. Kept apart so that tests can check
the shapes without a cluster. Facts: kwok Stage API ``kwok.x-k8s.io/v1alpha1`` (sigs.k8s.io/kwok
v0.8.0, pkg/apis/v1alpha1/stage_types.go); kwokctl config ``config.kwok.x-k8s.io/v1alpha1``
KwokctlConfiguration (pkg/apis/config/v1alpha1/kwokctl_configuration_types.go); apiserver
EncryptionConfiguration ``apiserver.config.k8s.io/v1``; audit Policy ``audit.k8s.io/v1``.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cgkit import node_manifests as nm

STORAGE_CLASS = "cgkit-sandbox"
ZONES = ("zone-a", "zone-b")
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")  # what kwokctl's kwok-controller manages
LOADBALANCER_IP = "127.0.0.1"


def kwokctl_config(bins: dict[str, Path], audit_policy: Path, encryption_config: Path,
                   pki_dir: Path | None = None) -> dict:
    """Return the KwokctlConfiguration for ``kwokctl create cluster --config``.

    Args:
        bins: paths of the built binaries, keyed by tool name (kube-apiserver,
            kube-controller-manager, kube-scheduler, kubectl, etcd, kwok).
        audit_policy: audit Policy file; encryption_config: EncryptionConfiguration file.
        pki_dir: kwokctl's pki dir of this cluster when the sandbox has a real node: the API
            server then also listens on the node's bridge address (pods reach it through the
            ``kubernetes`` Service, which it advertises), serves the Service IP and node address
            in its certificate, and calls the kubelet with the admin certificate (logs, exec).

    Returns:
        The config: binary runtime, every component from ``bins`` (nothing downloaded), etcd and
        controllers on loopback, secure port with Node,RBAC authorization, admission plugins
        (incl. PodSecurity and NodeRestriction), audit log, Secrets encrypted at rest, anonymous
        auth off, Services in ``10.96.0.0/16``, no leader election for the single
        controller-manager and scheduler; no Prometheus/Jaeger/dashboard.
    """
    apiserver_args = [
        {"key": "encryption-provider-config", "value": str(encryption_config)},
        {"key": "anonymous-auth", "value": "false"},
        {"key": "audit-log-maxsize", "value": "100"},
        {"key": "audit-log-maxbackup", "value": "2"},
        {"key": "service-cluster-ip-range", "value": nm.SERVICE_CIDR},
        {"key": "service-node-port-range", "value": nm.NODE_PORT_RANGE},
    ]
    if pki_dir is not None:
        apiserver_args += [
            {"key": "bind-address", "value": "0.0.0.0"},
            {"key": "advertise-address", "value": nm.NODE_IP},
            {"key": "kubelet-client-certificate", "value": str(pki_dir / "admin.crt")},
            {"key": "kubelet-client-key", "value": str(pki_dir / "admin.key")},
            {"key": "kubelet-preferred-address-types", "value": "InternalIP"},
        ]
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "securePort": True,
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "kubeAuditPolicy": str(audit_policy),
            "kubeApiserverBinary": str(bins["kube-apiserver"]),
            "kubeControllerManagerBinary": str(bins["kube-controller-manager"]),
            "kubeSchedulerBinary": str(bins["kube-scheduler"]),
            "kubectlBinary": str(bins["kubectl"]),
            "etcdBinary": str(bins["etcd"]),
            "kwokControllerBinary": str(bins["kwok"]),
            "kubeApiserverCertSANs": [nm.KUBERNETES_SERVICE_IP, nm.NODE_IP],
            "components": ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                           "kwok-controller"],
        },
        "componentsPatches": [
            {"name": "kube-apiserver", "extraArgs": apiserver_args},
            # one instance each: without leader election a restarted sandbox works at once instead
            # of waiting for the stopped instance's lease to expire
            {"name": "kube-controller-manager", "extraArgs": [{"key": "leader-elect", "value": "false"}]},
            {"name": "kube-scheduler", "extraArgs": [{"key": "leader-elect", "value": "false"}]},
            # kwokctl's binary runtime lets kwok manage *every* node; it must leave the real one
            # (its kubelet reports its status and runs its pods) alone.
            {"name": "kwok-controller", "extraArgs": [
                {"key": "manage-all-nodes", "value": "false"},
                {"key": "manage-nodes-with-annotation-selector",
                 "value": "=".join(KWOK_NODE_ANNOTATION)}]},
        ],
    }


def loadbalancer_stages() -> list[dict]:
    """Return kwok Stages that fill ``status.loadBalancer.ingress`` (ip 127.0.0.1) of Ingresses
    and of Services of type LoadBalancer, so that pulumi-kubernetes' awaits complete."""

    def stage(name: str, api_group: str, kind: str, extra: list[dict]) -> dict:
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": name},
            "spec": {
                "resourceRef": {"apiGroup": api_group, "kind": kind},
                "selector": {"matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.loadBalancer.ingress", "operator": "DoesNotExist"},
                    *extra,
                ]},
                "next": {"statusTemplate":
                         f"loadBalancer:\n  ingress:\n  - ip: {LOADBALANCER_IP}\n"},
            },
        }

    return [
        stage("cgkit-ingress-loadbalancer", "networking.k8s.io/v1", "Ingress", []),
        stage("cgkit-service-loadbalancer", "v1", "Service",
              [{"key": ".spec.type", "operator": "In", "values": ["LoadBalancer"]}]),
    ]


def nodes(count: int = 3) -> list[dict]:
    """Return ``count`` (>= 1) fake Nodes spread round-robin over ZONES, for kwok to run.

    Each: 32 CPU, 128Gi memory, 250 pods allocatable; labels kubernetes.io/hostname,
    topology.kubernetes.io/zone and region, node.kubernetes.io/instance-type=kwok; no taints, so
    the product's pods need no toleration.
    """
    if count < 1:
        raise ValueError(f"node count must be >= 1, got {count}")
    out = []
    for i in range(1, count + 1):
        name = f"cgkit-node-{i}"
        resources = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "500Gi"}
        out.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1],
                                "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/region": "sandbox",
                    "topology.kubernetes.io/zone": ZONES[(i - 1) % len(ZONES)],
                    "node.kubernetes.io/instance-type": "kwok",
                    "type": "kwok",
                },
            },
            "status": {"allocatable": resources, "capacity": resources},
        })
    return out


def volume_name(i: int, fake: bool) -> str:
    """Name of pool volume ``i``: ``cgkit-sandbox-pv-007`` (real node) or ``cgkit-sandbox-fake-pv-007``."""
    return f"cgkit-sandbox-{'fake-' if fake else ''}pv-{i:03d}"


def persistent_volumes(count: int = 100, size_gi: int = 50, base: Path | None = None) -> list[dict]:
    """Return a pool of ``count`` static PersistentVolumes of ``size_gi`` GiB each.

    storageClassName cgkit-sandbox, accessModes RWO+RWX, reclaim policy Retain (the sandbox scrubs
    a Released volume and returns it to the pool on ``up``). With ``base`` (a directory on the
    real node) they are ``local`` volumes at ``<base>/pv-NNN`` bound to the real node (the kubelet
    applies the pod's fsGroup to them, so PostgreSQL's UID 999 owns its data); without, they are
    the fake nodes' pool: hostPath sources that are never mounted, bound to kwok's nodes.
    """
    def source(i: int) -> dict:
        if base is None:
            return {"hostPath": {"path": f"/var/lib/cgkit-sandbox/pv-{i:03d}"},
                    "nodeAffinity": _affinity("type", "kwok")}
        return {"local": {"path": str(base / f"pv-{i:03d}")},
                "nodeAffinity": _affinity("kubernetes.io/hostname", nm.NODE_NAME)}

    return [{
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(i, fake=base is None),
                     "labels": {"app.kubernetes.io/managed-by": "cgkit-sandbox"}},
        "spec": {
            "capacity": {"storage": f"{size_gi}Gi"},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            **source(i),
        },
    } for i in range(1, count + 1)]


def _affinity(label: str, value: str) -> dict:
    return {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": label, "operator": "In", "values": [value]}]}]}}


def audit_policy() -> dict:
    """Return the audit Policy: Metadata level for every request (never request or response
    bodies, so Secret values never reach the log); read-only noise of leases and events dropped."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "verbs": ["get", "list", "watch"],
             "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]},
                           {"group": "", "resources": ["events"]}]},
            {"level": "Metadata"},
        ],
    }


def encryption_config(key: bytes) -> dict:
    """Return an EncryptionConfiguration that encrypts Secrets with secretbox.

    Args:
        key: exactly 32 random bytes (secretbox key).

    Raises:
        ValueError: the key is not 32 bytes.
    """
    if len(key) != 32:
        raise ValueError(f"secretbox key must be 32 bytes, got {len(key)}")
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                {"secretbox": {"keys": [{"name": "key1",
                                         "secret": base64.b64encode(key).decode()}]}},
                {"identity": {}},
            ],
        }],
    }
