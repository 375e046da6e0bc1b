"""The context as configuration: one JSON shape for the CrossGuard pack and the CLI.

cgkit writes, per stack, a policy-pack config file (``pulumi preview --policy-pack policies
--policy-pack-config <file>``). CrossGuard hands each policy only its own section, so the writer
repeats the same context under every rule id; the section looks like::

    {"gemeenteCode": "GM0344", "domain": "utrecht.nl", "allowedRegistries": ["docker.io"],
     "tenantNamespace": "gm0344", "waivers": [{"rule": ..., "reason": ..., "approved_by": ...,
     "expires": "2027-06-30"}]}

All keys are optional. A waived rule's section also sets ``"enforcementLevel": "advisory"``, so the
engine reports its findings (marked waived) without blocking. ``cgkit policy check --config`` reads
the same file (any one section, or a bare section).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from policies.model import Context
from policies.waivers import Waiver, parse_all

#: JSON Schema properties of a policy's config section (CrossGuard validates the file against it).
CONFIG_PROPERTIES: dict[str, dict[str, Any]] = {
    "gemeenteCode": {"type": "string", "pattern": "^GM[0-9]{4}$", "description": "CBS code, e.g. GM0344"},
    "domain": {"type": "string", "description": "the municipality's domain; Ingress hosts must lie within it"},
    "allowedRegistries": {"type": "array", "items": {"type": "string"}, "description": "registry hosts"},
    "tenantNamespace": {"type": "string", "description": "defaults to the lower-cased gemeenteCode"},
    "waivers": {"type": "array", "description": "approved exceptions: rule, reason, approved_by, expires",
                "items": {"type": "object", "required": ["rule", "reason", "approved_by", "expires"],
                          "properties": {k: {"type": "string"} for k in ("rule", "reason", "approved_by", "expires")}}},
}


def context_from_config(config: Mapping[str, Any] | None) -> Context:
    """The `Context` a config section describes; absent keys stay unknown (None)."""
    config = config or {}
    registries = config.get("allowedRegistries")
    return Context(gemeente_code=config.get("gemeenteCode"), domain=config.get("domain"),
                   allowed_registries=tuple(registries) if registries is not None else None,
                   tenant_namespace=config.get("tenantNamespace"))


def waivers_from_config(config: Mapping[str, Any] | None) -> list[Waiver]:
    """The waivers in a config section (parsed, not validated)."""
    return parse_all((config or {}).get("waivers"))


def section(ctx: Context, waivers: Iterable[Waiver] = ()) -> dict[str, Any]:
    """The config section for a context: only the known fields, in the shape `context_from_config` reads."""
    fields = {"gemeenteCode": ctx.gemeente_code, "domain": ctx.domain, "tenantNamespace": ctx.tenant_namespace,
              "allowedRegistries": list(ctx.allowed_registries) if ctx.allowed_registries is not None else None,
              "waivers": [w.as_dict() for w in waivers] or None}
    return {k: v for k, v in fields.items() if v is not None}


def pack_config(ctx: Context, rule_ids: Iterable[str], waivers: Iterable[Waiver] = ()) -> dict[str, Any]:
    """The whole ``--policy-pack-config`` document for one stack: a section per rule id.

    Waived rules get ``enforcementLevel: advisory``. Validate the waivers before calling this.
    """
    waivers = list(waivers)
    base = section(ctx, waivers)
    waived = {w.rule for w in waivers}
    return {rid: {**base, **({"enforcementLevel": "advisory"} if rid in waived else {})} for rid in rule_ids}


def any_section(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """Read a config file written by `pack_config` (take the first section) or a bare section."""
    if document and set(document) <= set(CONFIG_PROPERTIES):
        return document
    sections = [v for v in document.values() if isinstance(v, Mapping)]
    return sections[0] if sections else {}
