"""The catalog: every rule of every family, and the controls they serve, checked for consistency.

`load()` imports the families listed in `policies.rules.FAMILIES` (no glob, no import side effects:
a family contributes the `Rule` objects defined at its top level), reads ``controls.yaml`` and refuses
an inconsistent catalog with `CatalogError`.

Three layers, after Kubescape's regolibrary: rules cite controls, and each framework of
``controls.yaml`` selects the controls it requires by id pattern. `Catalog.framework` and
`Catalog.framework_rules` give one framework's part: its controls, and the rules that serve them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from cgkit.config.yamlsource import CONFIG_LIMITS, check_bounds, read_text
from cgkit.errors import CgkitError, ConfigError
from policies.model import Rule
from policies.rules import FAMILIES

POLICIES_DIR = Path(__file__).resolve().parent
CONTROLS_FILE = POLICIES_DIR / "controls.yaml"


class CatalogError(CgkitError):
    """The rules and controls disagree: duplicate ids, unknown controls, or a malformed controls file.
    A `CgkitError`, so every command reports it in one line naming the file, never a traceback."""

    reference = "policy-catalog"


@dataclass(frozen=True)
class Control:
    """A control a rule serves: ``BIO2:8.22`` is ISO/IEC 27002:2022 control 8.22 as adopted by BIO2."""

    id: str
    framework: str
    ref: str
    title: str


@dataclass(frozen=True)
class Framework:
    """A framework (``BIO2``) and the ids of the controls it selects, in ``controls.yaml`` order."""

    name: str
    title: str
    url: str
    controls: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"title", "url", "controls": [ids]}`` (the report's ``frameworks`` values)."""
        return {"title": self.title, "url": self.url, "controls": list(self.controls)}


@dataclass(frozen=True)
class Catalog:
    """All rules (in family order) and all controls and frameworks, keyed by id."""

    rules: tuple[Rule, ...]
    controls: Mapping[str, Control]
    frameworks: Mapping[str, Framework]

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

    def framework(self, name: str) -> Framework:
        """The framework called ``name``, in any case (``bio2``, ``BIO2``); CatalogError naming the
        frameworks there are when there is none."""
        by_name = {n.lower(): f for n, f in self.frameworks.items()}
        try:
            return by_name[name.lower()]
        except KeyError:
            raise CatalogError(f"unknown framework {name!r}; the frameworks are "
                               f"{', '.join(sorted(by_name))}") from None

    def framework_rules(self, name: str) -> tuple[Rule, ...]:
        """The rules (in catalog order) that serve at least one control of framework ``name``;
        CatalogError as `framework`."""
        selected = set(self.framework(name).controls)
        return tuple(r for r in self.rules if selected.intersection(r.controls))


def family_rules(family: str) -> list[Rule]:
    """The rules defined at the top level of ``policies.rules.<family>``, each stamped with its family."""
    module = importlib.import_module(f"policies.rules.{family}")
    return [dataclasses.replace(v, family=family) for v in vars(module).values() if isinstance(v, Rule)]


def _shown(path: Path) -> str:
    return f"policies/{path.name}" if path == CONTROLS_FILE else str(path)


def _read_controls(path: Path) -> Mapping[str, Any]:
    """The controls file as a mapping, read through cgkit's input boundary.

    Raises:
        CatalogError: naming the file (and line): unreadable, not YAML, or not a mapping.
    """
    try:
        text = read_text(path, _shown(path))
        check_bounds(text, _shown(path), CONFIG_LIMITS)
        data = yaml.safe_load(text)
    except ConfigError as bad:
        raise CatalogError(bad.render()) from None
    except yaml.YAMLError as bad:
        mark = getattr(bad, "problem_mark", None)
        raise CatalogError(f"{_shown(path)}{f':{mark.line + 1}' if mark else ''}: invalid YAML "
                           f"({getattr(bad, 'problem', None) or bad})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frameworks") or {}, dict) \
            or not isinstance(data.get("controls") or {}, dict):
        raise CatalogError(f"{_shown(path)}: expected a mapping with 'frameworks' and 'controls' mappings")
    return data


def load_controls(path: Path = CONTROLS_FILE) -> tuple[dict[str, Control], dict[str, Framework]]:
    """Read controls and frameworks, each framework with the controls its patterns select.

    A control belongs to the framework its id starts with (``BIO2:8.22``). CatalogError when an id
    starts with no known framework, a framework's pattern selects no control, or a control is selected
    by no framework."""
    data = _read_controls(path)
    spec = data.get("frameworks") or {}
    controls = {}
    try:
        for cid, c in (data.get("controls") or {}).items():
            framework = str(cid).split(":")[0]
            if framework not in spec or ":" not in str(cid):
                raise CatalogError(f"{path.name}: control {cid} must start with a known framework ({', '.join(spec)}:)")
            controls[cid] = Control(cid, framework, str(c["ref"]), str(c["title"]))
        frameworks, problems = {}, []
        for name, f in spec.items():
            patterns = f.get("controls") or []
            chosen = {p: [cid for cid in controls if fnmatch.fnmatchcase(cid, str(p))] for p in patterns}
            problems += [f"framework {name}: {p!r} selects no control" for p, ids in chosen.items() if not ids]
            frameworks[name] = Framework(name, str(f["title"]), str(f.get("url", "")),
                                         tuple(cid for cid in controls if any(cid in ids for ids in chosen.values())))
    except (KeyError, TypeError, AttributeError) as bad:
        missing = f"the field {bad} is missing" if isinstance(bad, KeyError) else "a value has the wrong shape"
        raise CatalogError(f"{_shown(path)}: {missing}; each control is <FRAMEWORK>:<id>: {{ref, title}}, each "
                           "framework <name>: {title, url, controls: [patterns]}") from None
    selected = {cid for f in frameworks.values() for cid in f.controls}
    problems += [f"control {cid} is selected by no framework" for cid in controls if cid not in selected]
    if problems:
        raise CatalogError(f"{path.name}: " + "; ".join(problems))
    return controls, frameworks


def build(rules: list[Rule], controls: dict[str, Control], frameworks: dict[str, Framework]) -> Catalog:
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
