"""Tenant isolation: what every municipality namespace must have (PSA labels, default-deny, quota,
limits) and the availability a replicated web app needs. Most rules here are stack rules: they can
only be judged with all objects of the stack at hand.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from cgkit import conventions
from policies.model import Context, key_path, labels, meta, rule, stack_rule
from policies.podspec import pod_metadata

PSA_PREFIX = "pod-security.kubernetes.io/"


def tenant_namespaces(objects: Sequence[Mapping[str, Any]], ctx: Context) -> Iterator[Mapping[str, Any]]:
    """The Namespace objects among ``objects`` that belong to a municipality."""
    for obj in objects:
        if obj.get("kind") == "Namespace" and is_tenant_namespace_object(obj, ctx):
            yield obj


def is_tenant_namespace_object(obj: Mapping[str, Any], ctx: Context) -> bool:
    """True for a Namespace labelled as a tenant or named like one (see `Context.is_tenant_namespace`)."""
    return conventions.LABEL_TENANT in labels(obj) or ctx.is_tenant_namespace(meta(obj).get("name") or "")


def in_namespace(objects, kind: str, namespace: str, ctx: Context) -> list[Mapping[str, Any]]:
    """The objects of ``kind`` that land in ``namespace``."""
    return [o for o in objects if o.get("kind") == kind and ctx.namespace_of(o) == namespace]


@rule("CGK-TEN-001", title="Tenant namespaces enforce, audit and warn at Pod Security level restricted",
      kinds={"Namespace"}, controls=("BIO2:8.22", "BIO2:8.27.01", "Haven:node-hardening"),
      rationale="""Pod Security Admission is the cluster-side backstop for the pod rules: with enforce=
      restricted the API server rejects a non-compliant pod even if it bypassed this pack (kubectl,
      an operator). audit and warn make attempts visible.""")
def psa_labels(obj, ctx):
    if not is_tenant_namespace_object(obj, ctx):
        return
    for mode in conventions.PSA_MODES:
        key = PSA_PREFIX + mode
        if labels(obj).get(key) != conventions.PSA_LEVEL:
            yield (key_path("metadata.labels", key),
                   f"label {key} is {labels(obj).get(key) or 'missing'}; set it to {conventions.PSA_LEVEL}")


@rule("CGK-TEN-002", title="Tenant namespaces name their municipality in labels", kinds={"Namespace"},
      controls=("BIO2:8.9", "BIO2:8.22"),
      rationale="""NetworkPolicies, quotas and reports select tenants by the cgkit.io/tenant and
      cgkit.io/gemeente-code labels; a namespace without them falls outside those selections.""")
def namespace_labels(obj, ctx):
    if not is_tenant_namespace_object(obj, ctx):
        return
    name = meta(obj).get("name") or ""
    expected = {conventions.LABEL_TENANT: name, conventions.LABEL_GEMEENTE: ctx.code_for(name)}
    for key, value in expected.items():
        if labels(obj).get(key) != value:
            yield key_path("metadata.labels", key), f"label {key} is {labels(obj).get(key) or 'missing'}; set it to {value}"


def _denies(policy: Mapping[str, Any], direction: str) -> bool:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
    return spec.get("podSelector") == {} and direction.capitalize() in types and not spec.get(direction)


@stack_rule("CGK-TEN-003", title="Tenant namespaces deny all ingress and egress by default",
            kinds={"Namespace", "NetworkPolicy"}, controls=("BIO2:8.22", "NSA:2.0", "Haven:private-network"),
            rationale="""Without a default-deny NetworkPolicy every pod can reach every other
            municipality's pods and databases. Default-deny for both directions, plus explicit allows per
            dependency, is the tenant boundary on the network.""")
def default_deny(objects, ctx):
    for ns in tenant_namespaces(objects, ctx):
        policies = in_namespace(objects, "NetworkPolicy", meta(ns).get("name"), ctx)
        missing = [d for d in ("ingress", "egress") if not any(_denies(p, d) for p in policies)]
        if missing:
            yield (ns, "NetworkPolicy", f"namespace {meta(ns).get('name')} has no default-deny for "
                   f"{' and '.join(missing)}; add a NetworkPolicy with podSelector: {{}}, policyTypes "
                   f"{[d.capitalize() for d in missing]} and no rules")


@stack_rule("CGK-TEN-004", title="Tenant namespaces have a ResourceQuota and a LimitRange",
            kinds={"Namespace", "ResourceQuota", "LimitRange"}, controls=("BIO2:8.6", "NSA:4.0", "NSA:4.1"),
            rationale="""The quota caps what one municipality can take from the shared cluster; the
            LimitRange gives defaults and maxima per container, so one tenant cannot exhaust a node.""")
def quota_and_limits(objects, ctx):
    for ns in tenant_namespaces(objects, ctx):
        for kind in ("ResourceQuota", "LimitRange"):
            if not in_namespace(objects, kind, meta(ns).get("name"), ctx):
                yield ns, kind, f"namespace {meta(ns).get('name')} has no {kind}; add one sized by the tier"


def _selects(pdb: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> bool:
    wanted = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return bool(wanted) and all(pod_labels.get(k) == v for k, v in wanted.items())


@stack_rule("CGK-TEN-005", title="Replicated web Deployments have a PodDisruptionBudget",
            kinds={"Deployment", "PodDisruptionBudget"}, controls=("BIO2:8.14", "Haven:availability"),
            rationale="""Running two or more web replicas only helps if a node drain cannot evict them all
            at once; the PodDisruptionBudget keeps at least one serving during maintenance.""")
def pdb_for_web(objects, ctx):
    for dep in (o for o in objects if o.get("kind") == "Deployment"):
        template = pod_metadata(dep)[0].get("labels") or {}
        replicas = (dep.get("spec") or {}).get("replicas", 1)
        component = template.get(conventions.LABEL_COMPONENT) or labels(dep).get(conventions.LABEL_COMPONENT)
        if component != "web" or not isinstance(replicas, int) or replicas < 2:
            continue
        pdbs = in_namespace(objects, "PodDisruptionBudget", ctx.namespace_of(dep), ctx)
        if not any(_selects(p, template) for p in pdbs):
            yield (dep, "spec.replicas", f"{replicas} web replicas but no PodDisruptionBudget selects them; "
                   "add one with minAvailable: 1 and the pod labels as selector")
