"""The small surface other parts of cgkit use: rule ids, their levels (for validating waivers) and the rules."""

from __future__ import annotations

from policies import catalog
from policies.model import Enforcement, Rule


def rule_ids() -> list[str]:
    """Every rule id in catalog order (``CGK-POD-001``, ...)."""
    return [r.id for r in catalog.load().rules]


def enforcement_levels() -> dict[str, Enforcement]:
    """Every rule id with its own enforcement (before any environment or waiver lowers it)."""
    return {r.id: r.enforcement for r in catalog.load().rules}


def rules() -> tuple[Rule, ...]:
    """Every rule in catalog order."""
    return catalog.load().rules
