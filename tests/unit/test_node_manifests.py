"""cgkit.node_manifests: the real node's configs, checked without a node."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cgkit import node_manifests as nm
from cgkit import sandbox_manifests


def test_network_layout_is_consistent() -> None:
    pods = ipaddress.ip_network(nm.POD_CIDR)
    services = ipaddress.ip_network(nm.SERVICE_CIDR)
    assert ipaddress.ip_address(nm.NODE_IP) in pods
    assert pods.subnet_of(ipaddress.ip_network(nm.CLUSTER_CIDR))
    assert not pods.overlaps(services)
    assert ipaddress.ip_address(nm.KUBERNETES_SERVICE_IP) == services.network_address + 1
    assert ipaddress.ip_address(nm.DNS_SERVICE_IP) in services


def test_cni_bridge_hands_out_pod_addresses_behind_the_node_address() -> None:
    conf = nm.cni_conflist(Path("/n/ipam"))
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["bridge"] == nm.BRIDGE
    assert bridge["ipMasq"] is False  # nothing leaves the machine
    (rng,) = bridge["ipam"]["ranges"][0]
    assert rng == {"subnet": nm.POD_CIDR, "gateway": nm.NODE_IP}
    assert bridge["ipam"]["dataDir"] == "/n/ipam"


def test_kubelet_runs_on_cgroup_v1_and_only_answers_authenticated_calls() -> None:
    cfg = nm.kubelet_config(Path("/pki/ca.crt"), Path("/n/c.sock"), Path("/n/resolv.conf"), Path("/n/logs"))
    assert cfg["failCgroupV1"] is False and cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["authentication"]["x509"]["clientCAFile"] == "/pki/ca.crt"
    assert cfg["authorization"]["mode"] == "Webhook" and cfg["readOnlyPort"] == 0
    assert cfg["clusterDNS"] == [nm.DNS_SERVICE_IP]
    assert cfg["containerRuntimeEndpoint"] == "unix:///n/c.sock"
    assert cfg["imageGCHighThresholdPercent"] == 100  # images cannot be pulled again


def test_containerd_never_pulls_and_keeps_everything_under_its_dir() -> None:
    root = Path("/sb/node/containerd")
    cfg = nm.containerd_config(root, root / "c.sock", "cgkit.sandbox/pause:abc")
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "cgkit.sandbox/pause:abc"
    assert cri["netns_mounts_under_state_dir"] is True and cri["restrict_oom_score_adj"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    for path in (cfg["root"], cfg["state"], cri["cni"]["conf_dir"], cfg["grpc"]["address"]):
        assert Path(path).is_relative_to(root)


def test_kube_router_runs_the_network_policy_controller_only() -> None:
    args = nm.kube_router_args(Path("/k"))
    assert "--run-firewall=true" in args
    assert "--run-service-proxy=false" in args and "--run-router=false" in args


def test_node_ports_stay_below_the_control_planes_ports() -> None:
    """kube-router admits pods to local NodePorts; kwokctl counts its ports down from 32767."""
    low, high = (int(x) for x in nm.NODE_PORT_RANGE.split("-"))
    assert high < 32700 and f"--service-node-port-range={nm.NODE_PORT_RANGE}" in nm.kube_router_args(Path("/k"))


def test_cluster_dns_is_what_tenant_policies_allow_and_answers_cluster_names_only() -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for o in nm.coredns_objects("img")}
    svc = objs[("Service", "kube-dns")]
    assert svc["metadata"]["namespace"] == "kube-system"
    assert svc["spec"]["clusterIP"] == nm.DNS_SERVICE_IP
    pod = objs[("Deployment", "coredns")]["spec"]["template"]
    assert pod["metadata"]["labels"] == {"k8s-app": "kube-dns"}  # components/tenant.py allow-dns
    assert "forward" not in nm.COREFILE  # no query leaves the machine
    assert f"kubernetes {nm.CLUSTER_DOMAIN}" in nm.COREFILE


def test_apiserver_is_reachable_from_pods_only_with_a_real_node() -> None:
    bins = {n: Path(f"/b/{n}") for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                         "kubectl", "etcd", "kwok")}

    def args(cfg: dict) -> dict[str, str]:
        patch = next(p for p in cfg["componentsPatches"] if p["name"] == "kube-apiserver")
        return {a["key"]: a["value"] for a in patch["extraArgs"]}

    fake_only = args(sandbox_manifests.kwokctl_config(bins, Path("/a"), Path("/e")))
    real = args(sandbox_manifests.kwokctl_config(bins, Path("/a"), Path("/e"), Path("/pki")))
    assert "bind-address" not in fake_only  # kwokctl's 127.0.0.1
    assert real["bind-address"] == "0.0.0.0" and real["advertise-address"] == nm.NODE_IP
    assert real["kubelet-client-certificate"] == "/pki/admin.crt"
    assert real["service-cluster-ip-range"] == fake_only["service-cluster-ip-range"] == nm.SERVICE_CIDR


def test_real_volumes_are_local_to_the_real_node_and_fake_ones_to_kwok() -> None:
    real = sandbox_manifests.persistent_volumes(3, 5, Path("/sb/volumes"))
    fake = sandbox_manifests.persistent_volumes(3, 5)
    assert real[0]["spec"]["local"] == {"path": "/sb/volumes/pv-001"}
    term = real[0]["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term["values"] == [nm.NODE_NAME]
    assert "hostPath" in fake[0]["spec"] and fake[0]["metadata"]["name"] == "cgkit-sandbox-fake-pv-001"
    assert {pv["metadata"]["name"] for pv in real}.isdisjoint(pv["metadata"]["name"] for pv in fake)


def test_kwok_manages_only_the_fake_nodes() -> None:
    bins = {n: Path(f"/b/{n}") for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                         "kubectl", "etcd", "kwok")}
    cfg = sandbox_manifests.kwokctl_config(bins, Path("/a"), Path("/e"), Path("/pki"))
    patch = next(p for p in cfg["componentsPatches"] if p["name"] == "kwok-controller")
    args = {a["key"]: a["value"] for a in patch["extraArgs"]}
    assert args == {"manage-all-nodes": "false",
                    "manage-nodes-with-annotation-selector": "kwok.x-k8s.io/node=fake"}
    assert all(n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for n in sandbox_manifests.nodes(2))
