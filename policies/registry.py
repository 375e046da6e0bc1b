"""The small surface other parts of cgkit use: rule ids (for validating waivers) and the rules."""

from __future__ import annotations

from policies import catalog
from policies.model import Rule


def rule_ids() -> list[str]:
    """Every rule id in catalog order (``CGK-POD-001``, ...)."""
    return [r.id for r in catalog.load().rules]


def rules() -> tuple[Rule, ...]:
    """Every rule in catalog order."""
    return catalog.load().rules
