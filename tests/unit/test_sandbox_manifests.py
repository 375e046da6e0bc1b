"""cgkit.sandbox_manifests: the sandbox's nodes, volumes, stages and API server config shapes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cgkit import sandbox_manifests as m


def test_nodes_span_two_zones_and_are_kwok_managed() -> None:
    nodes = m.nodes(3)
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    assert len(nodes) == 3 and len(zones) == 2
    assert all(n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for n in nodes)
    assert all("taints" not in n.get("spec", {}) for n in nodes)


def test_node_count_must_be_positive() -> None:
    with pytest.raises(ValueError):
        m.nodes(0)


def test_volume_pool_binds_rwo_and_rwx_claims_of_the_sandbox_class() -> None:
    pvs = m.persistent_volumes(100, 50)
    assert len({pv["metadata"]["name"] for pv in pvs}) == 100
    spec = pvs[0]["spec"]
    assert spec["storageClassName"] == "cgkit-sandbox"
    assert set(spec["accessModes"]) == {"ReadWriteOnce", "ReadWriteMany"}
    assert spec["capacity"]["storage"] == "50Gi"


def test_encryption_config_uses_secretbox_for_secrets_and_rejects_short_keys() -> None:
    cfg = m.encryption_config(bytes(range(32)))
    res = cfg["resources"][0]
    assert res["resources"] == ["secrets"]
    key = res["providers"][0]["secretbox"]["keys"][0]["secret"]
    assert base64.b64decode(key) == bytes(range(32))
    with pytest.raises(ValueError):
        m.encryption_config(b"short")


def test_audit_policy_never_logs_bodies() -> None:
    levels = {r["level"] for r in m.audit_policy()["rules"]}
    assert levels <= {"None", "Metadata"}


def test_kwokctl_config_hardens_the_apiserver_and_uses_only_given_binaries() -> None:
    names = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok"]
    bins = {n: Path(f"/b/{n}") for n in names}
    cfg = m.kwokctl_config(bins, Path("/s/audit.yaml"), Path("/s/enc.yaml"))
    opts = cfg["options"]
    assert opts["runtime"] == "binary" and opts["bindAddress"] == "127.0.0.1"
    assert opts["kubeAuthorization"] and opts["kubeAdmission"] and opts["securePort"]
    assert {v for k, v in opts.items() if k.endswith("Binary")} == {str(p) for p in bins.values()}
    patches = {p["name"]: p["extraArgs"] for p in cfg["componentsPatches"]}
    args = {a["key"]: a["value"] for a in patches["kube-apiserver"]}
    assert args["anonymous-auth"] == "false"
    assert args["encryption-provider-config"] == "/s/enc.yaml"


def test_loadbalancer_stages_cover_ingress_and_lb_services() -> None:
    kinds = {s["spec"]["resourceRef"]["kind"] for s in m.loadbalancer_stages()}
    assert kinds == {"Ingress", "Service"}
