"""Check results as OpenReports objects (``openreports.io/v1alpha1``) that ``kubectl apply --server-side -f`` loads.

OpenReports is the Kubernetes Policy WG's PolicyReport API (``wgpolicyk8s.io``) continued as its own
project (github.com/openreports/reports-api); Kyverno 1.15 writes it (kyverno#13452) and Policy
Reporter reads it. `reports` makes one ``Report`` per namespace the checked objects land in and one
``ClusterReport`` for cluster-scoped objects; each result is one rule's verdict on one object:

* ``pass``: the rule judged the object and found nothing;
* ``fail``: an unwaived finding of a mandatory rule (one result per finding: each names its field);
* ``warn``: a finding of an advisory rule, and a *waived* finding (properties ``waived: "true"`` and
  ``waiver``). OpenReports' ``warn`` is "requirements not met, not scored", which is what a waiver
  means; ``skip`` ("not selected or not applicable") would hide a finding a waiver only accepts.

``error`` is not used: a rule that cannot judge a malformed object reports a finding with its own
enforcement, so the object fails (or warns) rather than escaping the count. Severity: mandatory rules
``high``, advisory ``medium``. Fields as in reports-api's ``apis/openreports.io/v1alpha1``: ``source``,
``scope`` (the Namespace), ``summary {pass, fail, warn, error, skip}`` and ``results[] {source, policy
(the rule id), rule (its function), category (its family), severity, timestamp {seconds, nanos},
result, scored, resources[] (object references), message, properties (text values)}``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Mapping, Sequence

import yaml

from policies.model import Context, Enforcement, Finding, Rule, Status, Subject

API_VERSION = "openreports.io/v1alpha1"
SOURCE = "cgkit-policy"
RESULTS = ("pass", "fail", "warn", "error", "skip")
SEVERITY = {Enforcement.MANDATORY: "high", Enforcement.ADVISORY: "medium"}
#: The most bytes of results one Report holds; more go into further Reports of the namespace, named
#: ``<name>-2``, ``<name>-3``, ... One tenant's 107 objects make about 550 kB of results: one object that
#: large is past the 256 KiB ``kubectl apply`` keeps in its last-applied annotation (so apply it with
#: ``--server-side``), and a larger chart's would pass the API server's 1.5 MiB request limit.
MAX_REPORT_BYTES = 1_000_000
#: The name suffix of the Report of objects that name no namespace.
NO_NAMESPACE = "no-namespace"

#: Kinds the API server keeps outside namespaces (built-in groups and the common extension APIs:
#: cert-manager, Kyverno, External Secrets, OpenReports); their results go into the ClusterReport.
#: Not a "Cluster*" prefix rule: OLM's ClusterServiceVersion and CloudNativePG's Cluster are namespaced.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CSIDriver", "CSINode", "VolumeAttachment", "VolumeAttributesClass", "IngressClass", "RuntimeClass",
    "PriorityClass", "CustomResourceDefinition", "APIService", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "CertificateSigningRequest",
    "ClusterTrustBundle", "FlowSchema", "PriorityLevelConfiguration", "ComponentStatus", "IPAddress",
    "ServiceCIDR", "DeviceClass", "ResourceSlice", "StorageVersionMigration",
    "ClusterIssuer", "ClusterPolicy", "ClusterCleanupPolicy", "ClusterPolicyReport", "ClusterReport",
    "ClusterSecretStore", "ClusterExternalSecret",
})


def _key(s: Subject) -> tuple[str, str | None, str]:
    return s.kind, s.namespace, s.name


def _namespace(kind: str, namespace: str | None, ctx: Context) -> str | None:
    """Where a result is reported: None for a cluster-scoped kind, else the object's namespace, else
    the tenant's (cgkit applies into it), else ``""`` (the namespace ``kubectl apply`` is pointed at)."""
    return None if kind in CLUSTER_SCOPED else namespace or ctx.tenant_namespace or ""


def _result(rule: Rule, ref: Mapping[str, str], result: str, message: str,
            stamp: Mapping[str, int], properties: Mapping[str, str]) -> dict[str, Any]:
    return {"source": SOURCE, "policy": rule.id, "rule": rule.check.__name__, "category": rule.family,
            "severity": SEVERITY[rule.enforcement], "timestamp": dict(stamp), "result": result,
            "scored": result in ("pass", "fail"), "resources": [dict(ref)], "message": message,
            "properties": {"controls": ", ".join(rule.controls), **properties}}


def _verdict(f: Finding) -> tuple[str, dict[str, str]]:
    """A finding's result and its properties (the field, and the waiver when there is one)."""
    if f.status is Status.WAIVED:
        return "warn", {"path": f.path, "waived": "true", "waiver": f.waiver_reason or ""}
    return ("fail" if f.enforcement is Enforcement.MANDATORY else "warn"), {"path": f.path}


def reports(objects: Sequence[Mapping[str, Any]], findings: Iterable[Finding], rules: Sequence[Rule],
            ctx: Context | None = None, now: dt.datetime | None = None, name: str = "cgkit-policy",
            ) -> list[dict[str, Any]]:
    """The ClusterReport (when a cluster-scoped object was checked) and one Report per namespace of
    the checked objects (with no results when no rule judged them).

    ``objects`` are the checked manifests, ``findings`` what ``rules`` found in them (`evaluate`),
    ``ctx`` supplies the tenant namespace of objects that name none. Every report is called ``name``
    but the one for objects without any namespace: it has no ``metadata.namespace`` either, so it
    lands where ``kubectl apply`` puts those objects, and is called ``<name>-no-namespace`` so that it
    never replaces the Report of objects that name that namespace. Results are in rule order, then object order; a namespace
    whose results pass `MAX_REPORT_BYTES` gets further Reports, ``<name>-2`` and on.
    """
    ctx, now = ctx or Context(), now or dt.datetime.now(dt.timezone.utc)
    stamp = {"seconds": int(now.timestamp()), "nanos": 0}
    by_rule = {r.id: r for r in rules}
    api_versions = {_key(Subject.of(o)): str(o.get("apiVersion") or "") for o in objects}

    def ref(s: Subject) -> dict[str, str]:
        namespace = _namespace(s.kind, s.namespace, ctx)
        return {k: v for k, v in (("apiVersion", api_versions.get(_key(s), "")), ("kind", s.kind),
                                  ("namespace", namespace), ("name", s.name)) if v}

    # every namespace of a checked object has its Report, empty when no selected rule judges its
    # objects (--framework pss on ConfigMaps): the check happened, and kubectl gets objects to apply
    grouped: dict[str | None, list[dict[str, Any]]] = {
        _namespace(s.kind, s.namespace, ctx): [] for s in map(Subject.of, objects)}
    found = {(f.rule_id, _key(f.subject)) for f in findings}
    for f in findings:
        verdict, properties = _verdict(f)
        properties |= {"file": f.subject.source} if f.subject.source else {}
        grouped.setdefault(_namespace(f.subject.kind, f.subject.namespace, ctx), []).append(
            _result(by_rule[f.rule_id], ref(f.subject), verdict, f"{f.path}: {f.message}", stamp, properties))
    for r in rules:
        for o in objects:
            s = Subject.of(o)
            if r.applies_to(o) and (r.id, _key(s)) not in found:
                grouped.setdefault(_namespace(s.kind, s.namespace, ctx), []).append(
                    _result(r, ref(s), "pass", r.title, stamp, {}))
    order = {r.id: i for i, r in enumerate(rules)}
    # the ClusterReport first (it may hold the Namespaces), then by namespace, the unnamed one last
    namespaces = sorted(grouped, key=lambda ns: (ns is not None, ns == "", ns or ""))
    named = {ns: name if ns != "" else f"{name}-{NO_NAMESPACE}" for ns in namespaces}
    return [_report(ns, part, named[ns] if i == 0 else f"{named[ns]}-{i + 1}")
            for ns in namespaces
            for i, part in enumerate(_parts(sorted(grouped[ns], key=lambda x: order[x["policy"]])))]


def _parts(results: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``results`` cut, in order, into runs of at most `MAX_REPORT_BYTES` bytes of JSON each (at
    least one result per run), so that every Report stays an object the API server stores."""
    budget = MAX_REPORT_BYTES
    parts: list[list[dict[str, Any]]] = [[]]
    size = 0
    for result in results:
        n = len(json.dumps(result, separators=(",", ":")))
        if parts[-1] and size + n > budget:
            parts.append([])
            size = 0
        parts[-1].append(result)
        size += n
    return parts


def _report(namespace: str | None, results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A ClusterReport (``namespace`` None) or a Report of ``results``, with their summary."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {}),
                "labels": {"app.kubernetes.io/managed-by": "cgkit"}}
    report: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ClusterReport" if namespace is None else "Report",
                              "metadata": metadata, "source": SOURCE}
    if namespace:
        report["scope"] = {"apiVersion": "v1", "kind": "Namespace", "name": namespace}
    report["summary"] = {k: sum(r["result"] == k for r in results) for k in RESULTS}
    report["results"] = results
    return report


def as_yaml(documents: Sequence[Mapping[str, Any]]) -> str:
    """``documents`` as one multi-document YAML stream (``---`` between them), keys in written order."""
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=120)
