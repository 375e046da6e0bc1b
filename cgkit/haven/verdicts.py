"""Haven verdicts: one pure function per probe named in checks.yaml, from ClusterFacts to a Verdict.

A verdict is ``passed`` only when the facts show it; what cgkit cannot establish from where it runs
is ``not verifiable`` with the reason, never passed (issue 12). The thresholds and the accepted
hardening come from the checks' titles as the Haven Compliancy Checker prints them
(shared/research/commonground.md section 5.1).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from cgkit.haven.facts import ClusterFacts, NodeFacts

MIN_ZONES, MIN_CONTROL_PLANE, MIN_WORKERS, MAX_MINORS_BEHIND = 2, 3, 3, 3
HARDENED_OS = ("talos", "flatcar")
HARDENING_LSMS = ("selinux", "apparmor", "lkrg", "grsecurity")  # lkrg and grsecurity are out-of-tree
RWX_PROVISIONERS = ("nfs", "cephfs", "file.csi.azure.com", "kubernetes.io/azure-file", "efs.csi.aws.com",
                    "filestore.csi.storage.gke.io", "driver.longhorn.io")
LOG_AGENTS = ("fluent-bit", "fluentbit", "fluentd", "promtail", "alloy", "vector", "filebeat",
              "opentelemetry-collector", "otel-collector", "otelcol")
METRICS_APISERVICE = "v1beta1.metrics.k8s.io"
CERTIFICATE_CRD = "certificates.cert-manager.io"


class State(str, Enum):
    """A check's outcome: shown as its value."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_VERIFIABLE = "not verifiable"


@dataclass(frozen=True)
class Verdict:
    """A check's outcome and the evidence for it (one line, for people)."""

    state: State
    evidence: str


def _judge(ok: bool, evidence: str) -> Verdict:
    return Verdict(State.PASSED if ok else State.FAILED, evidence)


def _real(facts: ClusterFacts) -> list[NodeFacts]:
    return [n for n in facts.nodes if not n.fake]


def _fakes_note(facts: ClusterFacts) -> str:
    fakes = len(facts.nodes) - len(_real(facts))
    return f"; {fakes} kwok node(s) not counted (simulated, no machine behind them)" if fakes else ""


def about_the_checker(_facts: ClusterFacts) -> Verdict:
    return Verdict(State.NOT_VERIFIABLE, "a self test of the Haven Compliancy Checker binary; cgkit is not that binary")


def cluster_admin(facts: ClusterFacts) -> Verdict:
    return _judge(facts.cluster_admin, "may do every verb on every resource" if facts.cluster_admin
                  else "the kubeconfig's identity is not cluster-admin: other checks may see too little")


def zones(facts: ClusterFacts) -> Verdict:
    found = sorted({n.zone or "(no zone label)" for n in _real(facts)})
    labelled = [z for z in found if not z.startswith("(")]
    return _judge(len(labelled) >= MIN_ZONES, f"{len(labelled)} zone(s) over {len(_real(facts))} real node(s): "
                  f"{', '.join(found) or 'none'}{_fakes_note(facts)}")


def control_plane(facts: ClusterFacts) -> Verdict:
    addresses = facts.api_server_addresses
    return _judge(len(addresses) >= MIN_CONTROL_PLANE,
                  f"{len(addresses)} API server(s) behind default/kubernetes: {', '.join(addresses) or 'none'}")


def workers(facts: ClusterFacts) -> Verdict:
    ready = [n.name for n in _real(facts) if n.ready and not n.control_plane]
    return _judge(len(ready) >= MIN_WORKERS,
                  f"{len(ready)} Ready worker node(s): {', '.join(ready) or 'none'}{_fakes_note(facts)}")


def _hardening(node: NodeFacts) -> Verdict:
    os_image = node.os_image.lower()
    if any(name in os_image for name in HARDENED_OS):
        return _judge(True, f"{node.name}: {node.os_image}")
    if node.lsms is None:
        return Verdict(State.NOT_VERIFIABLE, f"{node.name}: {node.os_image or 'no OS reported'}; its kernel's security "
                       "modules are not visible through the API server" + (" (a kwok node has no kernel)" if node.fake else ""))
    active = [m for m in node.lsms if m in HARDENING_LSMS]
    return _judge(bool(active), f"{node.name}: active security modules {', '.join(node.lsms)}")


def node_hardening(facts: ClusterFacts) -> Verdict:
    per_node = [_hardening(n) for n in facts.nodes]
    if not per_node:
        return Verdict(State.FAILED, "no nodes")
    state = (State.FAILED if any(v.state is State.FAILED for v in per_node) else
             State.NOT_VERIFIABLE if any(v.state is State.NOT_VERIFIABLE for v in per_node) else State.PASSED)
    return Verdict(state, "; ".join(v.evidence for v in per_node))


def _private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True  # a host name (Hostname addresses) says nothing about the network
    return not ip.is_global  # RFC 1918, shared 100.64/10, link-local, ... (IANA special-purpose registry)


def private_networking(facts: ClusterFacts) -> Verdict:
    public = [f"{n.name} {kind} {a}" for n in _real(facts) for kind, a in n.addresses
              if kind in ("InternalIP", "ExternalIP") and not _private(a)]
    return _judge(not public and bool(_real(facts)), f"public node addresses: {', '.join(public)}" if public else
                  f"every address of {len(_real(facts))} real node(s) is private")


def version(facts: ClusterFacts) -> Verdict:
    match = re.match(r"v?1\.(\d+)", facts.server_version)
    if facts.latest_minor is None or not match:
        return Verdict(State.NOT_VERIFIABLE, f"server {facts.server_version}; the newest release is unknown "
                       f"({facts.latest_error})")
    behind = facts.latest_minor - int(match.group(1))
    return _judge(behind <= MAX_MINORS_BEHIND, f"server {facts.server_version}, newest 1.{facts.latest_minor} "
                  f"({facts.latest_error}): {max(behind, 0)} minor version(s) behind, at most {MAX_MINORS_BEHIND} allowed")


def rbac(facts: ClusterFacts) -> Verdict:
    return _judge(facts.rbac_served and not facts.anonymous_may_list_secrets,
                  f"rbac.authorization.k8s.io {'served' if facts.rbac_served else 'not served'}; system:anonymous "
                  f"{'may' if facts.anonymous_may_list_secrets else 'may not'} list Secrets")


def basic_auth(facts: ClusterFacts) -> Verdict:
    status = facts.basic_auth_status
    if not isinstance(status, int):
        return Verdict(State.NOT_VERIFIABLE, f"GET /api with made-up Basic credentials: {status}")
    return _judge(status == 401, f"GET /api with made-up Basic credentials answered {status}")


def read_write_many(facts: ClusterFacts) -> Verdict:
    capable = [p for p in facts.provisioners if any(known in p for known in RWX_PROVISIONERS)]
    shown = ", ".join(facts.rwx_volumes[:5]) + (f" and {len(facts.rwx_volumes) - 5} more" if len(facts.rwx_volumes) > 5
                                                 else "")
    local = f" ({facts.node_local_rwx} on hostPath/local storage do not count)" if facts.node_local_rwx else ""
    evidence = (f"ReadWriteMany volumes: {shown or 'none'}{local}; StorageClass provisioners: "
                f"{', '.join(facts.provisioners) or 'none'}")
    return _judge(bool(facts.rwx_volumes or capable), evidence)


def conformance(_facts: ClusterFacts) -> Verdict:
    return Verdict(State.NOT_VERIFIABLE, "needs a CNCF conformance run (sonobuoy or hydrophone), which cgkit "
                   "does not perform; attach its result to the audit")


def certificates(facts: ClusterFacts) -> Verdict:
    running = [f"{d.namespace}/{d.name}" for d in facts.deployments if d.complete
               and any("cert-manager" in i for i in d.images)]
    return _judge(CERTIFICATE_CRD in facts.crds and bool(running),
                  f"CRD {CERTIFICATE_CRD} {'served' if CERTIFICATE_CRD in facts.crds else 'absent'}; "
                  f"cert-manager Deployments available: {', '.join(running) or 'none'}")


def log_aggregation(facts: ClusterFacts) -> Verdict:
    agents = [d for d in facts.daemonsets if any(a in i for i in d.images for a in LOG_AGENTS)]
    complete = [f"{d.namespace}/{d.name}" for d in agents if d.complete]
    return _judge(bool(complete), f"log agent DaemonSets Ready on every node: {', '.join(complete) or 'none'}"
                  + (f" (not complete: {', '.join(f'{d.namespace}/{d.name}' for d in agents if not d.complete)})"
                     if len(complete) < len(agents) else ""))


def metrics_server(facts: ClusterFacts) -> Verdict:
    available = facts.apiservices.get(METRICS_APISERVICE)
    return _judge(bool(available), f"APIService {METRICS_APISERVICE} "
                  f"{'Available' if available else 'absent' if available is None else 'not Available'}")


#: probe name (checks.yaml) -> verdict function
PROBES: dict[str, Callable[[ClusterFacts], Verdict]] = {f.__name__: f for f in (
    about_the_checker, cluster_admin, zones, control_plane, workers, node_hardening, private_networking,
    version, rbac, basic_auth, read_write_many, conformance, certificates, log_aggregation, metrics_server)}
