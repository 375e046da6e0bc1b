"""Rule fixtures ("cases"): discovery, the context they run in, and their verdicts.

Layout: ``policies/rules/<family>/cases/<rule-id>/<verdict>-<scenario>.yaml`` where verdict is exactly
``pass`` or ``fail``. A case file holds one or more YAML documents (a stack rule sees them all
together); its first comment line says what it shows. A line ``# context: {key: value}`` overrides
fields of `FIXTURE_CONTEXT` for that case (e.g. ``{domain: null}`` to show a rule skipping without it).

Every ``fail`` case states, on its second line, the evidence the rule must give: ``# expect: <path>[,
<path>...]``, the exact set of distinct field paths the rule reports for it
(``# expect: spec.rules[0].host, spec.tls[0].hosts[0]``). In a case of more than one document each
entry also names its object as ``Kind/name: path`` (``# expect: Deployment/openzaak-web:
spec.replicas``), so a finding on the wrong object does not count. A ``pass`` case has no such line.

A ``fail`` case passes when the rule reports exactly the expected set (`CaseResult.reported`); a
``pass`` case when it reports nothing. `expectation_errors` names the case files whose ``# expect:``
line is missing (fail case), present (pass case), repeated or empty. pytest and the auditor report both run cases through `run_case`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from policies import catalog as catalog_mod
from policies.evaluate import run_rule
from policies.model import Context, Finding

RULES_DIR = catalog_mod.POLICIES_DIR / "rules"
CASE_NAME = re.compile(r"(pass|fail)-[a-z0-9][a-z0-9-]*\.yaml")
CONTEXT_LINE = re.compile(r"^# context: (.*)$", re.MULTILINE)
EXPECT_LINE = re.compile(r"^# expect:(.*)$", re.MULTILINE)

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

    @property
    def expect_lines(self) -> list[str]:
        """The text after ``# expect:`` of every such line in the file (a well-formed case has at most one)."""
        return EXPECT_LINE.findall(self.path.read_text(encoding="utf-8"))

    @property
    def expected_paths(self) -> frozenset[str] | None:
        """The entries of the ``# expect:`` line (``path`` or ``Kind/name: path``), or None without one."""
        lines = self.expect_lines
        if not lines:
            return None
        return frozenset(entry.strip() for entry in lines[0].split(",") if entry.strip())


@dataclass(frozen=True)
class CaseResult:
    """A case run: did the rule give the expected verdict, and what it found."""

    case: Case
    findings: tuple[Finding, ...]
    #: True for a case of more than one document: findings are then named ``Kind/name: path``.
    qualified: bool = False

    @property
    def reported(self) -> frozenset[str]:
        """The distinct finding paths, in the form the case's ``# expect:`` line uses."""
        return frozenset(evidence(f, self.qualified) for f in self.findings)

    @property
    def ok(self) -> bool:
        """True when a fail case reported exactly its expected paths, or a pass case nothing."""
        if self.case.expect_fail:
            return self.reported == self.case.expected_paths
        return not self.findings


def evidence(finding: Finding, qualified: bool = False) -> str:
    """A finding as an ``# expect:`` entry: its path, or ``Kind/name: path`` when ``qualified``."""
    return f"{finding.subject.kind}/{finding.subject.name}: {finding.path}" if qualified else finding.path


def discover(root: Path = RULES_DIR) -> list[Case]:
    """Every correctly named case under ``root``, sorted by path; `misnamed` lists the other files."""
    return [Case(p.parent.name, p.name.startswith("fail-"), p)
            for p in sorted(root.glob("*/cases/*/*.yaml")) if CASE_NAME.fullmatch(p.name)]


def misnamed(root: Path = RULES_DIR) -> list[Path]:
    """Files in case folders whose names do not follow ``pass-<scenario>.yaml``/``fail-<scenario>.yaml``."""
    return [p for p in sorted(root.glob("*/cases/*/*")) if not CASE_NAME.fullmatch(p.name)]


def expectation_errors(found: Iterable[Case]) -> list[str]:
    """``file: problem`` for each case whose ``# expect:`` line is missing (fail), present (pass),
    repeated or empty; `run_case` cannot judge such a case as intended."""
    errors = []
    for case in found:
        lines = case.expect_lines
        if case.expect_fail and not lines:
            errors.append(f"{case.path}: a fail case needs a line '# expect: <path>[, <path>...]'")
        elif not case.expect_fail and lines:
            errors.append(f"{case.path}: a pass case expects no findings; remove its '# expect:' line")
        elif len(lines) > 1 or (lines and not case.expected_paths):
            errors.append(f"{case.path}: give exactly one '# expect:' line with at least one path")
    return errors


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
    findings = run_rule(rule, objects, ctx, [str(case.path)] * len(objects))
    return CaseResult(case, tuple(findings), qualified=len(objects) > 1)
