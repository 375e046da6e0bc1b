"""Rule fixtures ("cases"): discovery, the context they run in, and their verdicts.

Layout: ``policies/rules/<family>/cases/<rule-id>/<verdict>-<scenario>.yaml`` where verdict is exactly
``pass`` or ``fail``. A case file holds one or more YAML documents (a stack rule sees them all
together); its first comment line says what it shows. A line ``# context: {key: value}`` overrides
fields of `FIXTURE_CONTEXT` for that case (e.g. ``{domain: null}`` to show a rule skipping without it).

A ``fail`` case passes when the rule reports at least one finding for it; a ``pass`` case when it
reports none. pytest and the auditor report both run cases through `run_case`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policies import catalog as catalog_mod
from policies.evaluate import run_rule
from policies.model import Context, Finding

RULES_DIR = catalog_mod.POLICIES_DIR / "rules"
CASE_NAME = re.compile(r"(pass|fail)-[a-z0-9][a-z0-9-]*\.yaml")
CONTEXT_LINE = re.compile(r"^# context: (.*)$", re.MULTILINE)

#: The municipality every case is judged for, unless the case overrides a field: Utrecht.
FIXTURE_CONTEXT = Context(gemeente_code="GM0344", domain="utrecht.nl", allowed_registries=("docker.io", "ghcr.io"))


@dataclass(frozen=True)
class Case:
    """One fixture file: which rule it exercises, the verdict it expects, and where it lives."""

    rule_id: str
    expect_fail: bool
    path: Path

    @property
    def name(self) -> str:
        """``CGK-POD-001/fail-pod`` — stable, readable test id."""
        return f"{self.rule_id}/{self.path.stem}"

    @property
    def description(self) -> str:
        """The case's first comment line."""
        first = self.path.read_text(encoding="utf-8").splitlines()[0]
        return first.lstrip("# ").strip() if first.startswith("#") else ""


@dataclass(frozen=True)
class CaseResult:
    """A case run: did the rule give the expected verdict, and what it found."""

    case: Case
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when a fail case was flagged, or a pass case was not."""
        return bool(self.findings) == self.case.expect_fail


def discover(root: Path = RULES_DIR) -> list[Case]:
    """Every correctly named case under ``root``, sorted by path; `misnamed` lists the other files."""
    return [Case(p.parent.name, p.name.startswith("fail-"), p)
            for p in sorted(root.glob("*/cases/*/*.yaml")) if CASE_NAME.fullmatch(p.name)]


def misnamed(root: Path = RULES_DIR) -> list[Path]:
    """Files in case folders whose names do not follow ``pass-<scenario>.yaml``/``fail-<scenario>.yaml``."""
    return [p for p in sorted(root.glob("*/cases/*/*")) if not CASE_NAME.fullmatch(p.name)]


def load(case: Case) -> tuple[list[dict[str, Any]], Context]:
    """The case's documents and the context to judge them in."""
    text = case.path.read_text(encoding="utf-8")
    ctx = FIXTURE_CONTEXT
    match = CONTEXT_LINE.search(text)
    if match:
        overrides = yaml.safe_load(match.group(1)) or {}
        if "allowed_registries" in overrides and overrides["allowed_registries"] is not None:
            overrides["allowed_registries"] = tuple(overrides["allowed_registries"])
        ctx = dataclasses.replace(ctx, **overrides)
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)], ctx


def run_case(case: Case) -> CaseResult:
    """Run the case's rule over the case; KeyError if the folder names no known rule."""
    rule = catalog_mod.load().rule(case.rule_id)
    objects, ctx = load(case)
    return CaseResult(case, tuple(run_rule(rule, objects, ctx, [str(case.path)] * len(objects))))
