"""Judge every Haven check from gathered facts, and render the results as text, JSON or SARIF 2.1.0."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from cgkit.errors import printable
from cgkit.haven.catalog import Check, load
from cgkit.haven.facts import ClusterFacts
from cgkit.haven.verdicts import PROBES, State, Verdict
from policies.report import haven_counts

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
#: SARIF 2.1.0 result kinds (section 3.27.9): "open" is "not enough information to decide"
SARIF_KIND = {State.PASSED: "pass", State.FAILED: "fail", State.NOT_VERIFIABLE: "open"}


@dataclass(frozen=True)
class Result:
    """A check with its verdict."""

    check: Check
    verdict: Verdict


def judge(facts: ClusterFacts, checks: Sequence[Check] | None = None) -> list[Result]:
    """Every check's verdict, in catalog order (``checks`` defaults to checks.yaml)."""
    return [Result(c, PROBES[c.probe](facts)) for c in (checks if checks is not None else load())]


def failed(results: Sequence[Result]) -> list[Result]:
    """The results that fail a mandatory check (every Haven check in the catalog is mandatory)."""
    return [r for r in results if r.verdict.state is State.FAILED]


def summary(results: Sequence[Result]) -> dict[str, int]:
    """``{"passed": n, "failed": n, "not verifiable": n}``."""
    return {s.value: sum(r.verdict.state is s for r in results) for s in State}


def text(results: Sequence[Result], server: str) -> str:
    """One line per check (``HAVEN-03 failed  Multiple availability zones in use: <evidence>``) and a
    summary line."""
    width = max(len(s.value) for s in State)
    lines = [f"Haven checks of {server}"]
    lines += [printable(f"{r.check.id} {r.verdict.state.value:<{width}}  {r.check.title}: {r.verdict.evidence}")
              for r in results]
    lines.append(haven_counts({"summary": summary(results)}))
    return "\n".join(lines)


def as_dict(results: Sequence[Result], server: str) -> dict:
    """``{"server": ..., "summary": {...}, "checks": [{id, category, title, state, evidence, how}]}``
    (also the Haven section of `cgkit policy report`)."""
    return {"server": server, "summary": summary(results), "checks": [
        {"id": r.check.id, "category": r.check.category, "title": r.check.title, "state": r.verdict.state.value,
         "evidence": r.verdict.evidence, "how": r.check.how} for r in results]}


def as_json(results: Sequence[Result], server: str) -> str:
    """``as_dict`` as indented JSON."""
    return json.dumps(as_dict(results, server), indent=2)


def sarif(results: Sequence[Result], server: str) -> str:
    """A SARIF 2.1.0 log: the checks as rules, one result per check with its kind (pass, fail, or
    open for not verifiable) and, for a failure, level error (every check is mandatory)."""
    rules = [{"id": r.check.id, "shortDescription": {"text": r.check.title},
              "fullDescription": {"text": r.check.how}, "properties": {"category": r.check.category}}
             for r in results]
    entries = [{"ruleId": r.check.id, "ruleIndex": i, "kind": SARIF_KIND[r.verdict.state],
                "level": "error" if r.verdict.state is State.FAILED else "none",
                "message": {"text": r.verdict.evidence},
                "locations": [{"logicalLocations": [{"fullyQualifiedName": server, "kind": "resource"}]}]}
               for i, r in enumerate(results)]
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [
        {"tool": {"driver": {"name": "cgkit-haven", "rules": rules}}, "results": entries}]}, indent=2)


FORMATS = {"text": text, "json": as_json, "sarif": sarif}
