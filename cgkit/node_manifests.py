"""What the sandbox's real node is made of, as plain data (no I/O): pure functions returning dicts.

cgkit.node writes these to files or applies them; keeping them apart lets tests check the shapes
without a node. The network of the node (one per machine):

    bridge ``cgkit0`` 10.244.0.1/24   pods' gateway and the node's InternalIP (the kubelet and the
                                      API server's advertised address live on it)
    pods 10.244.0.0/24                CNI bridge + host-local IPAM (containernetworking-plugins)
    Services 10.96.0.0/16             the API server's range; kube-proxy (iptables mode) gives VIPs
    cluster DNS 10.96.0.10            CoreDNS (Service ``kube-dns`` in kube-system)

Facts: KubeletConfiguration ``kubelet.config.k8s.io/v1beta1`` (k8s 1.35: ``failCgroupV1`` must be
false on a cgroup v1 host); KubeProxyConfiguration ``kubeproxy.config.k8s.io/v1alpha1``; containerd
1.6 config version 2 (its docs/cri/config.md); CNI spec 0.4.0 (bridge, host-local); CoreDNS's
kubernetes plugin and the upstream deployment's RBAC (coredns/deployment, kubernetes/coredns.yaml.sed).
"""

from __future__ import annotations

from pathlib import Path

NODE_NAME = "cgkit-real"
BRIDGE = "cgkit0"
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
KUBELET_PORT = 10250
KUBE_ROUTER_HEALTH_PORT = 20244
#: NodePort range of the API server and kube-router. kube-router lets pods reach every local port
#: of this range (NodePort traffic); kwokctl takes the control plane's ports counting down from
#: 32767, so the default range (30000-32767) let tenant pods reach the API server's port.
NODE_PORT_RANGE = "30000-31999"
NODE_LABELS = {"topology.kubernetes.io/region": "sandbox", "topology.kubernetes.io/zone": "zone-a",
               "node.kubernetes.io/instance-type": "real", "cgkit.io/node": "real"}


def containerd_config(root: Path, socket: Path, sandbox_image: str) -> dict:
    """Return containerd's config (version 2) for the node.

    Args:
        root: the node's containerd dir (``root/`` and ``state/`` below it).
        socket: the gRPC socket path (the kubelet's containerRuntimeEndpoint).
        sandbox_image: the pause image, loaded beforehand (nothing is ever pulled).

    Returns:
        runc v2 with cgroupfs (the host has cgroup v1 and no systemd), overlayfs, CNI from
        Debian's containernetworking-plugins (/usr/lib/cni) with the conf dir under ``root``;
        snapshotters and plugins that need what the host lacks are disabled.
    """
    cri = "io.containerd.grpc.v1.cri"
    return {
        "version": 2,
        "root": str(root / "root"),
        "state": str(root / "state"),
        "disabled_plugins": ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                             "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                             "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"],
        "grpc": {"address": str(socket)},
        "ttrpc": {"address": str(socket) + ".ttrpc"},
        "plugins": {cri: {
            "sandbox_image": sandbox_image,
            "enable_selinux": False,
            # the sandbox's root lacks CAP_SYS_RESOURCE (a VM's process manager holds it back), so
            # no process may lower its oom_score_adj: containerd must not try (runc fails otherwise)
            "restrict_oom_score_adj": True,
            # pod network namespaces under the state dir: down finds exactly the node's own
            "netns_mounts_under_state_dir": True,
            "containerd": {
                "snapshotter": "overlayfs",
                "default_runtime_name": "runc",
                "runtimes": {"runc": {"runtime_type": "io.containerd.runc.v2",
                                      "options": {"SystemdCgroup": False, "BinaryName": "/usr/sbin/runc"}}},
            },
            "cni": {"bin_dir": "/usr/lib/cni", "conf_dir": str(root / "cni")},
        }},
    }


def cni_conflist(ipam_dir: Path) -> dict:
    """Return the CNI network: a Linux bridge ``cgkit0`` with host-local IPAM on POD_CIDR.

    No IP masquerade: pods reach the node and each other, and nothing off the machine (there is
    no network beyond it). ``hairpinMode`` lets a pod reach itself through its Service VIP.
    """
    return {
        "cniVersion": "0.4.0",
        "name": "cgkit",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                     "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }


def kubelet_config(ca_file: Path, runtime_socket: Path, resolv_conf: Path, pod_logs: Path) -> dict:
    """Return the KubeletConfiguration of the real node.

    x509 client auth against the cluster CA and webhook authn/authz (the API server reaches the
    kubelet with the admin cert, for logs and exec); no read-only port; cgroupfs under ``/cgkit``
    (so ``down`` removes exactly what the node made); image GC off (images are built here and
    could not be pulled again); eviction thresholds low enough for a shared development disk.
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/cgkit",
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca_file)}},
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [DNS_SERVICE_IP],
        "resolvConf": str(resolv_conf),
        "podLogsDir": str(pod_logs),
        "failSwapOn": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%",
                         "imagefs.available": "2%", "nodefs.inodesFree": "2%"},
        "serializeImagePulls": False,
        "maxPods": 110,
    }


def kube_proxy_config(kubeconfig: Path) -> dict:
    """Return the KubeProxyConfiguration: iptables mode (the kernel has no IPVS), metrics and
    health on loopback, conntrack sysctls left as they are."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "1s"},
    }


def kube_router_args(kubeconfig: Path) -> list[str]:
    """Return kube-router's arguments: the NetworkPolicy controller only (iptables + ipset).

    Not the service proxy (IPVS, absent here; and the code of GHSA-phqm-jgc3-qf8g) nor the BGP
    router (one node, one bridge): see DESIGN.md for the choice.
    """
    return [f"--kubeconfig={kubeconfig}", f"--hostname-override={NODE_NAME}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}", f"--service-node-port-range={NODE_PORT_RANGE}",
            "--enable-ipv6=false",
            "--metrics-port=0", f"--health-port={KUBE_ROUTER_HEALTH_PORT}", "--iptables-sync-period=30s"]


COREFILE = f""".:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
    reload
    loadbalance
}}
"""


def coredns_objects(image: str) -> list[dict]:
    """Return the cluster DNS as Kubernetes objects: RBAC, Corefile, Deployment, Service kube-dns.

    As in CoreDNS's upstream deployment: label ``k8s-app: kube-dns`` (what tenants' DNS egress
    allows), read-only root, only NET_BIND_SERVICE. The Corefile answers cluster names only.
    """
    ns, labels = "kube-system", {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": ns, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns", "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": "coredns",
                "dnsPolicy": "Default",
                "nodeSelector": {"cgkit.io/node": "real"},
                "containers": [{
                    "name": "coredns", "image": image, "imagePullPolicy": "IfNotPresent",
                    "args": ["-conf", "/etc/coredns/Corefile"],
                    "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                              {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "20m", "memory": "32Mi"},
                                  "limits": {"memory": "128Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                    "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                      "initialDelaySeconds": 10, "periodSeconds": 10},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                }],
                "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
            }},
        }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
         "spec": {"clusterIP": DNS_SERVICE_IP, "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}},
    ]
