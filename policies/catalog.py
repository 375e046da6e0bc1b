"""The catalog: every rule of every family, and the controls they serve, checked for consistency.

`load()` imports the families listed in `policies.rules.FAMILIES` (no glob, no import side effects:
a family contributes the `Rule` objects defined at its top level), reads ``controls.yaml`` and refuses
an inconsistent catalog with `CatalogError`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from policies.model import Rule
from policies.rules import FAMILIES

POLICIES_DIR = Path(__file__).resolve().parent
CONTROLS_FILE = POLICIES_DIR / "controls.yaml"


class CatalogError(Exception):
    """The rules and controls disagree: duplicate ids, unknown controls, or a malformed controls file."""


@dataclass(frozen=True)
class Control:
    """A control a rule serves: ``BIO2:8.22`` is ISO/IEC 27002:2022 control 8.22 as adopted by BIO2."""

    id: str
    framework: str
    ref: str
    title: str


@dataclass(frozen=True)
class Catalog:
    """All rules (in family order) and all controls and frameworks, keyed by id."""

    rules: tuple[Rule, ...]
    controls: Mapping[str, Control]
    frameworks: Mapping[str, Mapping[str, Any]]

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id; KeyError if there is none."""
        return self.by_id[rule_id]

    @functools.cached_property
    def by_id(self) -> dict[str, Rule]:
        """Rules keyed by id."""
        return {r.id: r for r in self.rules}

    def rules_for_control(self, control_id: str) -> list[Rule]:
        """The rules that cite ``control_id``."""
        return [r for r in self.rules if control_id in r.controls]


def family_rules(family: str) -> list[Rule]:
    """The rules defined at the top level of ``policies.rules.<family>``, each stamped with its family."""
    module = importlib.import_module(f"policies.rules.{family}")
    return [dataclasses.replace(v, family=family) for v in vars(module).values() if isinstance(v, Rule)]


def load_controls(path: Path = CONTROLS_FILE) -> tuple[dict[str, Control], dict[str, Any]]:
    """Read controls and frameworks; CatalogError if a control names an unknown framework."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    frameworks = data.get("frameworks") or {}
    controls = {}
    for cid, c in (data.get("controls") or {}).items():
        if c.get("framework") not in frameworks or not cid.startswith(f"{c.get('framework')}:"):
            raise CatalogError(f"{path.name}: control {cid} must start with a known framework ({', '.join(frameworks)})")
        controls[cid] = Control(cid, c["framework"], str(c["ref"]), c["title"])
    return controls, frameworks


def build(rules: list[Rule], controls: dict[str, Control], frameworks: dict[str, Any]) -> Catalog:
    """Assemble a catalog; CatalogError on duplicate rule ids or on references to unknown controls."""
    seen: dict[str, Rule] = {}
    problems = []
    for r in rules:
        if r.id in seen:
            problems.append(f"rule id {r.id} is used twice ({seen[r.id].family}.{seen[r.id].check.__name__} "
                            f"and {r.family}.{r.check.__name__})")
        seen[r.id] = r
        problems += [f"rule {r.id} cites unknown control {c}" for c in r.controls if c not in controls]
        if not r.controls:
            problems.append(f"rule {r.id} cites no control")
    if problems:
        raise CatalogError("; ".join(problems))
    return Catalog(tuple(rules), controls, frameworks)


@functools.lru_cache(maxsize=1)
def load() -> Catalog:
    """The catalog of all families in `FAMILIES` (cached); raises CatalogError when inconsistent."""
    controls, frameworks = load_controls()
    return build([r for family in FAMILIES for r in family_rules(family)], controls, frameworks)
