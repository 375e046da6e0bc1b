"""TenantBaseline: the isolated namespace one municipality's apps live in.

Creates, for one CBS code:

* the Namespace ``conventions.tenant_namespace(code)`` with Pod Security Admission ``restricted``
  in enforce, audit and warn mode (version ``latest``) and the cgkit labels;
* a ResourceQuota and a LimitRange sized by tier (``components.sizing``);
* NetworkPolicies: default-deny ingress and egress for every pod, DNS egress to kube-dns, ingress
  from the ingress controller's namespace to the apps' web pods, and exactly the allows the enabled
  apps' declared needs imply (database, Redis, ``depends_on`` between apps, the environment's
  OpenTelemetry collector) — see
  :func:`network_policies`;
* Roles ``cgkit-tenant-admin`` and ``cgkit-tenant-viewer`` (namespace-scoped, explicit verbs, viewers
  cannot read Secrets) bound to the municipality's groups;
* a patch of the ``default`` ServiceAccount setting ``automountServiceAccountToken: false``.

Why a patch for ``default``: the ServiceAccount controller creates it in every namespace, so
declaring it as a ServiceAccount would fight the controller on create and delete it on destroy. A
server-side-apply ``ServiceAccountPatch`` owns exactly the one field, converges on every re-run,
and on destroy merely gives the field up.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import pulumi
import pulumi_kubernetes as k8s

from cgkit import conventions as cv
from cgkit.netpeer import Destination
from components import _defaults as d
from components.backing import BACKUP, POSTGRES, POSTGRES_PORT, PROVISION, REDIS, REDIS_PORT
from components.catalog import AppSpec
from components.sizing import tier

#: Label every namespace carries (set by the API server since Kubernetes 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class ExternalDatabase:
    """A PostgreSQL server outside the cluster.

    ``cidr`` narrows the egress rule; by default it is ``host/32`` when ``host`` is an IP address.
    For a DNS name NetworkPolicy cannot match the name, so the rule allows egress to *any* address
    on ``port`` only — set ``cidr`` (or use an IP) to tighten it.
    """

    host: str
    port: int = 5432
    sslmode: str = "require"
    cidr: str | None = None

    def egress_cidr(self) -> str:
        if self.cidr:
            return str(ipaddress.ip_network(self.cidr, strict=False))
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return "0.0.0.0/0"
        return f"{ip}/{ip.max_prefixlen}"


@dataclass(frozen=True)
class TenantBaselineArgs:
    """Inputs of :class:`TenantBaseline`.

    ``apps`` are the *enabled* apps' catalog entries; their ``depends_on`` decide the app-to-app
    allows (a dependency on an app that is not enabled creates nothing).
    """

    code: str
    """CBS code, e.g. ``"GM0344"``; the namespace is its lower-case form."""
    size: Literal["S", "M", "L", "XL"]
    apps: Sequence[AppSpec]
    ingress_namespace: str
    """Namespace of the shared ingress controller, allowed to reach the web pods."""
    external_database: ExternalDatabase | None = None
    """``None`` (default) means the in-tenant PostgreSQL of ``components.backing``."""
    admins: Sequence[str] = ()
    """Group names bound to ``cgkit-tenant-admin``; no binding when empty."""
    viewers: Sequence[str] = ()
    """Group names bound to ``cgkit-tenant-viewer``; no binding when empty."""
    otlp: Destination | None = None
    """The OpenTelemetry collector the apps export to (``cgkit.otlp``); ``None``: no such egress."""
    backup_store: Destination | None = None
    """The object store the in-tenant PostgreSQL's backups go to (``cgkit.backups``); ``None``: no backups."""
    dns_namespace: str = "kube-system"
    dns_pod_labels: dict[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    """Labels of the cluster DNS pods (CoreDNS keeps the ``kube-dns`` label for compatibility)."""


def _port(port: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"protocol": protocol, "port": port}


def _pods(**match: str) -> dict[str, Any]:
    return {"pod_selector": {"match_labels": dict(match)}}


def _apps_in(keys: Sequence[str]) -> dict[str, Any]:
    return {"pod_selector": {"match_expressions": [
        {"key": cv.LABEL_NAME, "operator": "In", "values": sorted(keys)}]}}


def network_policies(args: TenantBaselineArgs) -> dict[str, dict[str, Any]]:
    """Return ``{policy name: NetworkPolicy spec}`` for a tenant: pure data, one entry per policy.

    Every rule names its peer and port. With a collector (``args.otlp``) one more policy,
    ``otlp-egress``, lets the app pods (not PostgreSQL or Redis) reach exactly its port in its
    namespace or at its address. App pods are matched by ``app.kubernetes.io/name`` (all roles
    of an app: web, worker and beat all talk to the database, Redis and the apps it depends on); web
    pods by name plus ``app.kubernetes.io/component: web``.
    """
    L = cv.LABEL_NAME
    C = cv.LABEL_COMPONENT
    enabled = {a.key: a for a in args.apps}
    callers: dict[str, list[str]] = {k: [] for k in enabled}
    for app in enabled.values():
        for dep in app.depends_on:
            if dep in enabled:
                callers[dep].append(app.key)

    policies: dict[str, dict[str, Any]] = {
        "default-deny": {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]},
        "allow-dns": {
            "pod_selector": {},
            "policy_types": ["Egress"],
            "egress": [{
                "to": [{
                    "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: args.dns_namespace}},
                    "pod_selector": {"match_labels": dict(args.dns_pod_labels)},
                }],
                "ports": [_port(53, "UDP"), _port(53, "TCP")],
            }],
        },
    }

    if args.external_database is None:
        db_peer = [_pods(**{L: POSTGRES, C: POSTGRES})]
        db_port = POSTGRES_PORT
    else:
        db_peer = [{"ip_block": {"cidr": args.external_database.egress_cidr()}}]
        db_port = args.external_database.port

    for key, app in enabled.items():
        web_from = [{
            "from": [{"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: args.ingress_namespace}}}],
            "ports": [_port(app.port)],
        }]
        if callers[key]:
            web_from.append({"from": [_apps_in(callers[key])], "ports": [_port(app.port)]})
        policies[f"{key}-web-ingress"] = {
            "pod_selector": {"match_labels": {L: key, C: "web"}},
            "policy_types": ["Ingress"],
            "ingress": web_from,
        }
        egress = [
            {"to": db_peer, "ports": [_port(db_port)]},
            {"to": [_pods(**{L: REDIS, C: REDIS})], "ports": [_port(REDIS_PORT)]},
        ]
        deps = [dep for dep in app.depends_on if dep in enabled]
        for dep in deps:
            egress.append({"to": [_pods(**{L: dep, C: "web"})], "ports": [_port(enabled[dep].port)]})
        policies[f"{key}-egress"] = {
            "pod_selector": {"match_labels": {L: key}},
            "policy_types": ["Egress"],
            "egress": egress,
        }

    if enabled:
        policies["redis-ingress"] = {
            "pod_selector": {"match_labels": {L: REDIS, C: REDIS}},
            "policy_types": ["Ingress"],
            "ingress": [{"from": [_apps_in(list(enabled))], "ports": [_port(REDIS_PORT)]}],
        }
    if args.otlp is not None and enabled:
        policies["otlp-egress"] = {
            "pod_selector": _apps_in(list(enabled))["pod_selector"],
            "policy_types": ["Egress"],
            "egress": [{"to": [args.otlp.peer()], "ports": [_port(args.otlp.port)]}],
        }
    if args.external_database is None and enabled:
        policies["postgresql-ingress"] = {
            "pod_selector": {"match_labels": {L: POSTGRES, C: POSTGRES}},
            "policy_types": ["Ingress"],
            "ingress": [{
                "from": [_apps_in(list(enabled)), _pods(**{L: POSTGRES, C: PROVISION}),
                         *([_pods(**{L: POSTGRES, C: BACKUP})] if args.backup_store else [])],
                "ports": [_port(POSTGRES_PORT)],
            }],
        }
        policies["postgresql-provision-egress"] = {
            "pod_selector": {"match_labels": {L: POSTGRES, C: PROVISION}},
            "policy_types": ["Egress"],
            "egress": [{"to": [_pods(**{L: POSTGRES, C: POSTGRES})], "ports": [_port(POSTGRES_PORT)]}],
        }
        if args.backup_store is not None:
            policies["postgresql-backup-egress"] = {
                "pod_selector": {"match_labels": {L: POSTGRES, C: BACKUP}},
                "policy_types": ["Egress"],
                "egress": [{"to": [_pods(**{L: POSTGRES, C: POSTGRES})], "ports": [_port(POSTGRES_PORT)]},
                           {"to": [args.backup_store.peer()], "ports": [_port(args.backup_store.port)]}],
            }
    return policies


#: Resources the tenant roles cover, by API group. Explicit lists: no ``*`` anywhere.
_WORKLOADS = {
    "": ["pods", "services", "endpoints", "configmaps", "persistentvolumeclaims", "serviceaccounts",
         "events", "resourcequotas", "limitranges"],
    "apps": ["deployments", "statefulsets", "replicasets"],
    "batch": ["jobs", "cronjobs"],
    "networking.k8s.io": ["ingresses", "networkpolicies"],
    "policy": ["poddisruptionbudgets"],
    "discovery.k8s.io": ["endpointslices"],
}
_READ = ["get", "list", "watch"]


def role_rules(role: Literal["admin", "viewer"]) -> list[dict[str, Any]]:
    """PolicyRules of the two tenant roles.

    * viewer: read the workload objects and pod logs; never Secrets.
    * admin: everything the viewer can, plus read Secrets and restart/scale workloads (``patch`` on
      Deployments/StatefulSets, ``delete`` on pods and jobs). Objects stay owned by Pulumi: no
      create/update of workloads, no RBAC. No ``pods/exec``, ``attach`` or ``portforward``: they
      bypass the apps' own access control (policy CGK-RBAC-003, BIO2 8.18); the platform team's
      break-glass access covers the exceptional case.
    """
    rules = [{"api_groups": [g], "resources": rs, "verbs": list(_READ)} for g, rs in _WORKLOADS.items()]
    rules.append({"api_groups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]})
    if role == "admin":
        rules += [
            {"api_groups": [""], "resources": ["secrets"], "verbs": list(_READ)},
            {"api_groups": ["apps"], "resources": ["deployments", "statefulsets",
                                                    "deployments/scale", "statefulsets/scale"],
             "verbs": ["patch"]},
            {"api_groups": [""], "resources": ["pods"], "verbs": ["delete"]},
            {"api_groups": ["batch"], "resources": ["jobs"], "verbs": ["delete"]},
        ]
    return rules


class TenantBaseline(pulumi.ComponentResource):
    """Namespace, quota, limits, network isolation and access for one municipality.

    Outputs: ``namespace`` (the namespace name).
    """

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: TenantBaselineArgs, opts: pulumi.ResourceOptions | None = None):
        d.require_provider("TenantBaseline", name, opts)
        super().__init__("cgkit:tenant:TenantBaseline", name, None, opts)
        t = tier(args.size)
        ns_name = cv.tenant_namespace(args.code)
        base = d.labels(args.code, "tenant", "baseline")

        ns_labels = {**base, cv.LABEL_TENANT: ns_name}
        for mode in cv.PSA_MODES:
            ns_labels[f"pod-security.kubernetes.io/{mode}"] = cv.PSA_LEVEL
            ns_labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
        self.ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": ns_name, "labels": ns_labels},
            opts=d.holds_data(self),
        )
        self.namespace = self.ns.metadata.apply(lambda m: m["name"] if isinstance(m, dict) else m.name)
        ns = self.namespace

        def meta(obj_name: str, component: str = "baseline") -> dict[str, Any]:
            return {"name": obj_name, "namespace": ns, "labels": d.labels(args.code, "tenant", component)}

        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota", metadata=meta("tenant-quota"), spec={"hard": t.quota.hard()}, opts=d.child(self))
        lr = t.limit_range
        self.limit_range = k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta("tenant-limits"),
            spec={"limits": [{
                "type": "Container",
                "default": {"cpu": lr.default_cpu, "memory": lr.default_memory},
                "default_request": {"cpu": lr.default_request_cpu, "memory": lr.default_request_memory},
                "max": {"cpu": lr.max_cpu, "memory": lr.max_memory},
            }]},
            opts=d.child(self),
        )

        self.network_policies = {
            pol: k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{pol}", metadata=meta(pol, "network-policy"), spec=spec, opts=d.child(self))
            for pol, spec in network_policies(args).items()
        }

        self.roles: dict[str, k8s.rbac.v1.Role] = {}
        self.role_bindings: dict[str, k8s.rbac.v1.RoleBinding] = {}
        for role, groups in (("admin", args.admins), ("viewer", args.viewers)):
            role_name = f"cgkit-tenant-{role}"
            self.roles[role] = k8s.rbac.v1.Role(
                f"{name}-role-{role}", metadata=meta(role_name, "rbac"), rules=role_rules(role),
                opts=d.child(self))
            if groups:
                self.role_bindings[role] = k8s.rbac.v1.RoleBinding(
                    f"{name}-rolebinding-{role}",
                    metadata=meta(role_name, "rbac"),
                    role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
                    subjects=[{"api_group": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
                              for g in groups],
                    opts=d.child(self, depends_on=[self.roles[role]]),
                )

        self.default_service_account = k8s.core.v1.ServiceAccountPatch(
            f"{name}-default-sa",
            metadata={"name": "default", "namespace": ns},
            automount_service_account_token=False,
            opts=d.child(self),
        )

        self.register_outputs({"namespace": self.namespace})
