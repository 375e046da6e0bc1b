"""Waivers: a municipality's approved, time-limited exception to one rule.

A municipality file carries ``waivers: [{rule, reason, approved_by, expires}]``. A waiver never hides
a finding: the finding stays in every report with status ``waived`` and the reason, it just no longer
blocks. An expired waiver, or one for a rule that does not exist, is an error (`WaiverError`), so
exceptions cannot outlive their approval or silently point at nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from policies.model import Finding, Status


class WaiverError(ValueError):
    """One or more waivers are invalid; the message lists each problem."""


@dataclass(frozen=True)
class Waiver:
    """An exception to one rule for one municipality (fields as in the municipality file)."""

    rule: str
    reason: str
    approved_by: str
    expires: dt.date

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> "Waiver":
        """Build a waiver from its YAML/JSON mapping; WaiverError if a field is missing or malformed
        (rule, reason and approved_by are text; expires a date or YYYY-MM-DD text)."""
        if not isinstance(data, Mapping):
            raise WaiverError(f"a waiver must be a mapping with rule, reason, approved_by and expires, "
                              f"not {type(data).__name__} {str(data)[:60]!r}")
        missing = [f for f in ("rule", "reason", "approved_by", "expires") if not data.get(f)]
        if missing:
            raise WaiverError(f"waiver {str(dict(data))[:200]} is missing {', '.join(missing)}")
        wrong = [f for f in ("rule", "reason", "approved_by") if not isinstance(data[f], str)]
        if wrong:
            raise WaiverError(f"waiver for {str(data['rule'])[:60]}: {', '.join(wrong)} must be text")
        expires = data["expires"]
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError as e:
                raise WaiverError(f"waiver for {data['rule']}: expires {expires!r} is not a date (YYYY-MM-DD)") from e
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if not isinstance(expires, dt.date):
            raise WaiverError(f"waiver for {data['rule']}: expires {expires!r} is not a date (YYYY-MM-DD)")
        return cls(str(data["rule"]), str(data["reason"]), str(data["approved_by"]), expires)

    def describe(self) -> str:
        """One line for reports: reason, approver, expiry."""
        return f"{self.reason} (approved by {self.approved_by}, until {self.expires.isoformat()})"

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form (the shape the pack config and municipality files use)."""
        return {"rule": self.rule, "reason": self.reason, "approved_by": self.approved_by,
                "expires": self.expires.isoformat()}


def parse_all(items: Iterable[Mapping[str, Any] | Waiver] | None) -> list[Waiver]:
    """Parse a list of waiver mappings (Waiver objects pass through); WaiverError when ``items`` is not
    a list or an item is malformed."""
    if items is not None and not isinstance(items, (list, tuple)):
        raise WaiverError(f"waivers must be a list of mappings, not {type(items).__name__}")
    return [w if isinstance(w, Waiver) else Waiver.parse(w) for w in items or ()]


def validate(waivers: Sequence[Waiver], known_rules: Iterable[str], today: dt.date | None = None) -> None:
    """Raise WaiverError listing every expired waiver and every waiver for an unknown rule."""
    today = today or dt.date.today()
    known = set(known_rules)
    problems = [f"waiver for {w.rule} names no known rule" for w in waivers if w.rule not in known]
    problems += [f"waiver for {w.rule} expired on {w.expires.isoformat()} (approved by {w.approved_by}); "
                 "renew or remove it" for w in waivers if w.expires < today]
    if problems:
        raise WaiverError("; ".join(problems))


def apply(findings: Iterable[Finding], waivers: Sequence[Waiver]) -> list[Finding]:
    """Mark the findings of waived rules as ``waived`` (with the reason); others pass unchanged."""
    by_rule = {w.rule: w for w in waivers}
    return [dataclasses.replace(f, status=Status.WAIVED, waiver_reason=by_rule[f.rule_id].describe())
            if f.rule_id in by_rule else f for f in findings]
