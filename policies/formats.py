"""Render findings for people (text) and machines (JSON, SARIF 2.1.0 for code-scanning UIs)."""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from cgkit.errors import printable
from policies.model import Enforcement, Finding, Rule, Status

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def status_label(f: Finding) -> str:
    """``mandatory``, ``advisory`` or ``waived``: what the finding means for the run."""
    return f.status.value if f.status is Status.WAIVED else f.enforcement.value


def text(findings: Sequence[Finding], objects: int, files: int) -> str:
    """One line per finding (``file: Kind/ns/name: RULE [level] path: message``) and a summary line."""
    lines = [printable(f"{f.subject.source or '-'}: {f.subject}: {f.rule_id} [{status_label(f)}] {f.path}: {f.message}"
                       + (f" (waived: {f.waiver_reason})" if f.waiver_reason else "")) for f in findings]
    blocking = sum(f.blocking for f in findings)
    lines.append(f"{len(findings)} finding(s), {blocking} blocking, in {objects} object(s) from {files} file(s)")
    return "\n".join(lines)


def as_json(findings: Sequence[Finding], objects: int, files: int) -> str:
    """``{"summary": {...}, "findings": [...]}`` with each finding as `Finding.as_dict`."""
    summary = {"findings": len(findings), "blocking": sum(f.blocking for f in findings),
               "waived": sum(f.status is Status.WAIVED for f in findings), "objects": objects, "files": files}
    return json.dumps({"summary": summary, "findings": [f.as_dict() for f in findings]}, indent=2)


def _sarif_level(f: Finding) -> str:
    return "error" if f.enforcement is Enforcement.MANDATORY else "warning"


def sarif(findings: Sequence[Finding], rules: Iterable[Rule]) -> str:
    """A SARIF 2.1.0 log: the rule catalog as ``tool.driver.rules``, waived findings as suppressed."""
    rules = list(rules)
    index = {r.id: i for i, r in enumerate(rules)}
    driver_rules = [{"id": r.id, "name": r.check.__name__, "shortDescription": {"text": r.title},
                     "fullDescription": {"text": r.rationale},
                     "defaultConfiguration": {"level": "error" if r.enforcement is Enforcement.MANDATORY else "warning"},
                     "properties": {"controls": list(r.controls), "family": r.family, "scope": r.scope.value}}
                    for r in rules]
    results = []
    for f in findings:
        location = {"logicalLocations": [{"fullyQualifiedName": str(f.subject), "kind": "resource"}]}
        if f.subject.source:
            location["physicalLocation"] = {"artifactLocation": {"uri": f.subject.source}}
        result = {"ruleId": f.rule_id, "ruleIndex": index[f.rule_id], "level": _sarif_level(f),
                  "message": {"text": f"{f.path}: {f.message}"}, "locations": [location],
                  "properties": {"path": f.path}}
        if f.status is Status.WAIVED:
            result["suppressions"] = [{"kind": "external", "justification": f.waiver_reason or ""}]
        results.append(result)
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "cgkit-policy", "rules": driver_rules}}, "results": results}]}
    return json.dumps(log, indent=2)
