"""The context and the environment's policy as configuration: one JSON shape for the CrossGuard pack and the CLI.

cgkit writes, per stack, a policy-pack config file (``pulumi preview --policy-pack policies
--policy-pack-config <file>``). CrossGuard hands each policy only its own section, so the writer
repeats the same context under every rule id; the section looks like::

    {"gemeenteCode": "GM0344", "domain": "utrecht.nl", "allowedRegistries": ["docker.io"],
     "tenantNamespace": "gm0344", "enforcement": "mandatory", "maxWaiverDays": 180,
     "waivers": [{"rule": ..., "reason": ..., "approved_by": ..., "expires": "2027-06-30"}],
     "enforcementLevel": "mandatory"}

All keys are optional. ``enforcement`` and ``maxWaiverDays`` are the environment's ``policy:``
section (`PolicySettings`). ``enforcementLevel`` is what the engine enforces for that rule
(`level_of`): the rule's own level, lowered to advisory when the environment is advisory or the
rule is waived, so the engine reports those findings (waived ones marked) without blocking.
``cgkit policy check --config`` reads the same file (`config_section`: the file as written, or a
bare section; nothing else).
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policies.model import Context, Enforcement
from policies.waivers import DEFAULT_MAX_WAIVER_DAYS, Waiver, parse_all


class PolicySettings(BaseModel):
    """How the policy rules are enforced in this environment. Without this section: mandatory, and
    waivers of mandatory rules for at most 180 days (the production-safe default)."""

    # The one model of the section: cgkit's environment file model uses it, and the pack config
    # carries it (``enforcement``, ``maxWaiverDays``; `section`, `policy_from_config`).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    enforcement: Literal["mandatory", "advisory"] = Field(
        "mandatory", description="mandatory: a violation of a mandatory rule blocks preview/up and exits 1; "
        "advisory: every finding is reported, none blocks.")
    max_waiver_days: int = Field(DEFAULT_MAX_WAIVER_DAYS, ge=1, le=3650, description="A waiver of a mandatory "
                                 "rule must expire within this many days from today.")

    @property
    def level(self) -> Enforcement:
        """``enforcement`` as the rules' type."""
        return Enforcement(self.enforcement)


#: JSON Schema properties of a policy's config section (CrossGuard validates the file against it).
CONFIG_PROPERTIES: dict[str, dict[str, Any]] = {
    "gemeenteCode": {"type": "string", "pattern": "^GM[0-9]{4}$", "description": "CBS code, e.g. GM0344"},
    "domain": {"type": "string", "description": "the municipality's domain; Ingress hosts must lie within it"},
    "allowedRegistries": {"type": "array", "items": {"type": "string"}, "description": "registry hosts"},
    "tenantNamespace": {"type": "string", "description": "defaults to the lower-cased gemeenteCode"},
    "enforcement": {"type": "string", "enum": ["mandatory", "advisory"],
                    "description": "the environment's enforcement (policy.enforcement)"},
    "maxWaiverDays": {"type": "integer", "minimum": 1, "description": "the environment's waiver limit in days"},
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


def policy_from_config(config: Mapping[str, Any] | None) -> PolicySettings:
    """The environment's `PolicySettings` in a config section (absent keys take the defaults).

    Raises:
        ValueError: ``enforcement`` or ``maxWaiverDays`` has a value the model refuses; the message
            names each key, what is valid and what was given.
    """
    config = config or {}
    keys = {"enforcement": "enforcement", "max_waiver_days": "maxWaiverDays"}
    given = {field: config[key] for field, key in keys.items() if config.get(key) is not None}
    try:
        return PolicySettings.model_validate(given)
    except ValidationError as e:
        raise ValueError("; ".join(f"{keys[str(err['loc'][0])]}: {err['msg']} (got {err['input']!r})"
                                   for err in e.errors())) from None


def section(ctx: Context, waivers: Iterable[Waiver] = (), policy: PolicySettings | None = None) -> dict[str, Any]:
    """The config section for a context, waivers and environment policy: only the known fields, in
    the shape `context_from_config`, `waivers_from_config` and `policy_from_config` read."""
    fields = {"gemeenteCode": ctx.gemeente_code, "domain": ctx.domain, "tenantNamespace": ctx.tenant_namespace,
              "allowedRegistries": list(ctx.allowed_registries) if ctx.allowed_registries is not None else None,
              "enforcement": policy.enforcement if policy else None,
              "maxWaiverDays": policy.max_waiver_days if policy else None,
              "waivers": [w.as_dict() for w in waivers] or None}
    return {k: v for k, v in fields.items() if v is not None}


def level_of(rule_level: Enforcement, environment: Enforcement, waived: bool) -> Enforcement:
    """What the engine enforces for one rule in one stack: advisory when waived, else the rule's own
    level within the environment's (`Enforcement.within`)."""
    return Enforcement.ADVISORY if waived else rule_level.within(environment)


def pack_config(ctx: Context, levels: Mapping[str, Enforcement], waivers: Iterable[Waiver] = (),
                policy: PolicySettings | None = None) -> dict[str, Any]:
    """The whole ``--policy-pack-config`` document for one stack: a section per rule id.

    Args:
        ctx: the stack's context.
        levels: every rule id with its own level, in catalog order (`policies.registry.enforcement_levels`).
        waivers: the municipality's waivers; validate them (`policies.waivers.validate`) first.
        policy: the environment's policy section (default: mandatory).

    Each section sets ``enforcementLevel`` (`level_of`), so the file says what the engine enforces.
    """
    waivers, policy = list(waivers), policy or PolicySettings()
    base = section(ctx, waivers, policy)
    waived = {w.rule for w in waivers}
    return {rid: {**base, "enforcementLevel": level_of(own, policy.level, rid in waived).value}
            for rid, own in levels.items()}


#: The keys of one section: the context and policy fields and the level the engine enforces.
SECTION_KEYS = frozenset(CONFIG_PROPERTIES) | {"enforcementLevel"}


def config_section(document: Mapping[str, Any], known_rules: Iterable[str]) -> Mapping[str, Any]:
    """The one section of a config file: a document written by `pack_config` (a section per rule id,
    alike but for ``enforcementLevel``) or a bare section.

    Nothing else is read as one: a file whose first mapping happened to look like a section (``x:
    {enforcement: advisory}``) would otherwise make every finding advisory with nothing to show for it.

    Raises:
        ValueError: the document holds nothing; it has keys that are neither section fields nor known
            rule ids (named, with what is valid); a rule's value is not a mapping of section fields; or
            the rules' sections differ in something other than ``enforcementLevel``.
    """
    if not document:
        raise ValueError("holds no settings; give a file written by cgkit (a section per rule id) or a section "
                         f"with some of {', '.join(sorted(CONFIG_PROPERTIES))}")
    keys = {str(key) for key in document}
    if keys <= SECTION_KEYS:
        return document
    known = set(known_rules)
    strange = sorted(keys - known - SECTION_KEYS)
    if strange or keys & SECTION_KEYS:
        raise ValueError(f"key(s) {', '.join(strange or sorted(keys & SECTION_KEYS))[:300]} make it neither a section "
                         f"(keys: {', '.join(sorted(SECTION_KEYS))}) nor a file of sections per known rule id "
                         "(as cgkit writes it for the engine)")
    sections = []
    for rule, body in document.items():
        if not isinstance(body, Mapping) or not {str(k) for k in body} <= SECTION_KEYS:
            raise ValueError(f"{rule}: expected a section (a mapping of {', '.join(sorted(SECTION_KEYS))})")
        sections.append({k: v for k, v in body.items() if k != "enforcementLevel"})
    if any(other != sections[0] for other in sections[1:]):
        raise ValueError("the rules' sections differ (cgkit writes the same context, policy and waivers under every "
                         "rule id); give one section, or the file as cgkit wrote it")
    return document[next(iter(document))]
