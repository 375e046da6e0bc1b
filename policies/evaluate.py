"""Run rules over manifests: the one engine behind pytest, the CLI, the report and the benchmark.

The CrossGuard pack does not use this module's loop (the Pulumi engine calls each policy per
resource), but it calls the same rule functions with the same `Context`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from policies import catalog as catalog_mod
from policies import shape
from policies import waivers as waivers_mod
from policies.model import Context, Enforcement, Finding, Rule, Scope, Subject

#: What a rule raises when a manifest's fields have types it does not expect (a string where a list
#: belongs, a null item): the object is then reported, never passed.
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def run_rule(rule: Rule, objects: Sequence[Mapping[str, Any]], ctx: Context,
             sources: Sequence[str | None] | None = None) -> list[Finding]:
    """Findings of one rule over ``objects`` (``sources[i]`` is the file of ``objects[i]``, if known)."""
    source_of = {id(o): s for o, s in zip(objects, sources or ())}

    def finding(obj: Mapping[str, Any], path: str, message: str) -> Finding:
        return Finding(rule.id, rule.enforcement, Subject.of(obj, source_of.get(id(obj))), path, message)

    if rule.scope is Scope.STACK:
        try:
            return [finding(o, p, m) for o, p, m in rule.check(objects, ctx)]
        except SHAPE_ERRORS as err:
            bad = next((o for o in objects if rule.applies_to(o) and shape.problems(o)), objects[0] if objects else {})
            return [finding(bad, *unjudged(bad, err))]
    found = []
    for o in objects:
        if rule.applies_to(o):
            try:
                found += [finding(o, p, m) for p, m in rule.check(o, ctx)]
            except SHAPE_ERRORS as err:
                found.append(finding(o, *unjudged(o, err)))
    return found


def unjudged(obj: Mapping[str, Any], err: Exception) -> tuple[str, str]:
    """The ``(path, message)`` of a finding for an object a rule could not judge: the first field
    whose type departs from the Kubernetes API (`policies.shape`), else the rule's own complaint."""
    problems = shape.problems(obj, most=1)
    path, why = problems[0] if problems else ("", f"{type(err).__name__}: {err}")
    return path, f"the rule cannot judge this object ({why}); fix the field so that the API server would accept it"


def evaluate(objects: Sequence[Mapping[str, Any]], ctx: Context | None = None, *,
             rules: Iterable[Rule] | None = None, sources: Sequence[str | None] | None = None,
             waivers: Sequence[waivers_mod.Waiver] = (),
             enforcement: Enforcement = Enforcement.MANDATORY) -> list[Finding]:
    """All findings of ``rules`` (default: the whole catalog) over the manifest dicts ``objects``,
    waivers applied, each finding's enforcement its rule's level within the environment's
    ``enforcement`` (an advisory environment blocks nothing). Waivers are applied, not validated:
    call `policies.waivers.validate` first.
    """
    ctx = ctx or Context()
    findings = [f for r in (catalog_mod.load().rules if rules is None else rules)
                for f in run_rule(r, objects, ctx, sources)]
    if enforcement is Enforcement.ADVISORY:
        findings = [dataclasses.replace(f, enforcement=f.enforcement.within(enforcement)) for f in findings]
    return waivers_mod.apply(findings, waivers)
