"""The CrossGuard adapter: every catalog rule as a Pulumi policy, judging the same manifest dicts.

* An object rule becomes a ``ResourceValidationPolicy``; a stack rule a ``StackValidationPolicy``.
  Policy name = rule id, description = title, enforcement from the rule, tags = control ids.
* Resource props arrive as the Kubernetes provider's inputs: the object's own camelCase fields
  (``apiVersion``, ``kind``, ``metadata``, ``spec``, ``data`` ...), behind pulumi_policy's proxies that
  raise on unknown values and unwrap secrets. `manifest_of` turns them into a plain manifest dict; the
  type token (``kubernetes:apps/v1:Deployment``) supplies apiVersion/kind when they are absent.
* Context: from the policy's config section (``--policy-pack-config``, written per stack by cgkit, see
  `policies.config`). Without config (plain ``pulumi preview --policy-pack policies``) the context is
  empty: the domain and registry rules do not judge, and tenant namespaces are recognised by their
  name (``gm`` + four digits), as `policies.model.Context` documents. Nothing is guessed from labels,
  because a label is exactly what a mistaken object could get wrong.
* Unknown values during preview: resource rules read the props lazily (`manifest_view`), so only a
  rule that reads an unknown value raises pulumi_policy's UnknownValueError, which the engine
  reports as "can't run policy during preview" and runs again at ``up``. An unknown namespace (the
  Namespace's output, in a new tenant's first preview) reads as the config's tenant namespace.
  Stack rules read unknowns as None instead (`manifest_of`), since a stack's outputs during preview
  always contain unknowns (status) they never look at.
"""

from __future__ import annotations

import re
from collections import ChainMap
from typing import Any, Callable, Mapping, Sequence

from pulumi_policy import (EnforcementLevel, PolicyConfigSchema, ReportViolation, ResourceValidationArgs,
                           ResourceValidationPolicy, Severity, StackValidationArgs, StackValidationPolicy)
from pulumi_policy.proxy import UnknownValueError, _is_unknown
from pulumi_policy.secret import Secret

from policies import catalog
from policies.config import CONFIG_PROPERTIES, context_from_config, waivers_from_config
from policies.model import Context, Enforcement, Rule, Scope, Subject

PACK_NAME = "cgkit"
#: ``kubernetes:<group>/<version>:<Kind>``; group ``core`` means the legacy API group (apiVersion ``v1``).
TYPE_TOKEN = re.compile(r"kubernetes:(?P<group>[^:/]+)/(?P<version>[^:/]+):(?P<kind>[A-Za-z]+)")
#: Type tokens of the provider's component resources (their children are judged, not they).
COMPONENT_GROUPS = frozenset({"yaml", "helm.sh", "kustomize"})

_ENFORCEMENT = {Enforcement.MANDATORY: EnforcementLevel.MANDATORY, Enforcement.ADVISORY: EnforcementLevel.ADVISORY}
_SEVERITY = {Enforcement.MANDATORY: Severity.HIGH, Enforcement.ADVISORY: Severity.LOW}


def api_version_and_kind(resource_type: str) -> tuple[str, str] | None:
    """``("apps/v1", "Deployment")`` for ``kubernetes:apps/v1:Deployment``; None for anything that is
    not a Kubernetes object (other providers, the provider's components, ``...List`` types).

    A server-side-apply patch (``ServiceAccountPatch``) is judged as the object it patches, with the
    fields it sets, the way ``cgkit.render`` renders it, so the pack and the report agree. (cgkit's
    only patch is the tenant's default ServiceAccount, which sets automountServiceAccountToken.)
    """
    m = TYPE_TOKEN.fullmatch(resource_type)
    if not m or m["group"] in COMPONENT_GROUPS or m["kind"].endswith("List"):
        return None
    kind = m["kind"].removesuffix("Patch")
    return (m["version"] if m["group"] == "core" else f"{m['group']}/{m['version']}"), kind


def plain(value: Any, unknown_as_none: bool = False) -> Any:
    """A deep copy of pulumi_policy props as plain dicts/lists, secrets unwrapped.

    Raises UnknownValueError at the first unknown value unless ``unknown_as_none``.
    """
    if isinstance(value, Secret):
        value = value.value
    if isinstance(value, str):
        if _is_unknown(value):
            if unknown_as_none:
                return None
            raise UnknownValueError(value, [])
        return value
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key], unknown_as_none)
            except UnknownValueError:
                if not unknown_as_none:
                    raise
                out[key] = None
        return out
    if isinstance(value, Sequence):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i], unknown_as_none))
            except UnknownValueError:
                if not unknown_as_none:
                    raise
                items.append(None)
        return items
    return value


def manifest_of(resource_type: str, props: Mapping[str, Any], unknown_as_none: bool = False) -> dict | None:
    """The Kubernetes manifest a Pulumi resource declares, or None when it is not a Kubernetes object."""
    ident = api_version_and_kind(resource_type)
    if ident is None:
        return None
    manifest = plain(props, unknown_as_none)
    manifest.setdefault("apiVersion", ident[0])
    manifest["kind"] = ident[1]
    return manifest


def manifest_view(resource_type: str, props: Mapping[str, Any], tenant_namespace: str | None = None) -> Mapping | None:
    """A lazy manifest over the engine's props: reading an unknown value raises UnknownValueError
    only when a rule reads it, so one unknown field (a generated name, a Secret reference) defers
    only the rules that look at it. None when the resource is not a Kubernetes object.

    An unknown ``metadata.namespace`` (a namespace taken from the Namespace resource's output, as in
    a new tenant's first preview) reads as ``tenant_namespace`` when the pack config gives one.
    """
    ident = api_version_and_kind(resource_type)
    if ident is None:
        return None
    layers: list[Mapping[str, Any]] = [{"apiVersion": ident[0], "kind": ident[1]}]
    if tenant_namespace:
        try:
            props["metadata"]["namespace"]
        except UnknownValueError:
            layers.append({"metadata": ChainMap({"namespace": tenant_namespace}, props["metadata"])})
        except (KeyError, TypeError):
            pass
    return ChainMap(*layers, props)


def _subject(manifest: Mapping[str, Any]) -> Subject:
    """The subject for a message; parts that are still unknown read ``(unknown)``."""
    def read(key: str) -> Any:
        try:
            return (manifest.get("metadata") or {}).get(key)
        except UnknownValueError:
            return "(unknown)"
    return Subject(str(manifest.get("kind")), read("namespace"), str(read("name") or "?"))


def _message(rule_waivers: Mapping[str, str], rule: Rule, subject: Subject, path: str, message: str) -> str:
    waived = rule_waivers.get(rule.id)
    return f"{subject}: {path}: {message}" + (f" [waived: {waived}]" if waived else "")


def _config(args: ResourceValidationArgs | StackValidationArgs) -> tuple[Context, dict[str, str]]:
    config = args.get_config()
    return context_from_config(config), {w.rule: w.describe() for w in waivers_from_config(config)}


def resource_validator(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """The validate callback for an object rule."""
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        ident = api_version_and_kind(args.resource_type)
        if ident is None or (rule.kinds and ident[1] not in rule.kinds):
            return
        ctx, rule_waivers = _config(args)
        manifest = manifest_view(args.resource_type, args.props, ctx.tenant_namespace)
        for path, message in rule.check(manifest, ctx):
            report_violation(_message(rule_waivers, rule, _subject(manifest), path, message), None)
    return validate


def stack_validator(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """The validate callback for a stack rule; violations point at the subject resource's URN."""
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        pairs = [(r.urn, manifest_of(r.resource_type, r.props, unknown_as_none=True)) for r in args.resources]
        objects = [m for _, m in pairs if m is not None]
        urn_of = {id(m): urn for urn, m in pairs if m is not None}
        ctx, rule_waivers = _config(args)
        for subject, path, message in rule.check(objects, ctx):
            report_violation(_message(rule_waivers, rule, Subject.of(subject), path, message), urn_of.get(id(subject)))
    return validate


def policy_for(rule: Rule) -> ResourceValidationPolicy | StackValidationPolicy:
    """The CrossGuard policy that runs ``rule``."""
    common = dict(name=rule.id, description=rule.title, enforcement_level=_ENFORCEMENT[rule.enforcement],
                  config_schema=PolicyConfigSchema(properties=CONFIG_PROPERTIES), display_name=f"{rule.id} {rule.title}",
                  severity=_SEVERITY[rule.enforcement], tags=list(rule.controls))
    if rule.scope is Scope.STACK:
        return StackValidationPolicy(validate=stack_validator(rule), **common)
    return ResourceValidationPolicy(validate=resource_validator(rule), **common)


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """One policy per catalog rule, in catalog order."""
    return [policy_for(r) for r in catalog.load().rules]
