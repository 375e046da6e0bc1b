"""Waivers: a municipality's approved, time-limited exception to one rule — the one model and its checks.

A municipality file carries ``waivers: [{rule, reason, approved_by, expires}]``; the per-stack pack
config repeats them. `Waiver` is the one model of both: cgkit's config model uses it for the file
(pydantic reports a malformed field with its line there), the pack and ``cgkit policy check`` parse
the JSON/YAML form with `Waiver.parse`. It needs pydantic, never cgkit's config code (the pack
runs in the engine).

`problems` is the one place that judges a list of waivers: a rule that does not exist, a rule waived
twice, an expired waiver, and a waiver of a mandatory rule that runs past the environment's limit
(``policy.max_waiver_days`` of the environment file, counted from today). A waiver never hides a
finding: the finding stays in every report with status ``waived`` and the reason, it just no longer
blocks (`apply`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
import unicodedata
from typing import Annotated, Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from policies.model import Enforcement, Finding, Status

#: How long a waiver of a mandatory rule may run, in days from today, when the environment sets no limit.
DEFAULT_MAX_WAIVER_DAYS = 180
#: The pydantic error type of cgkit's own field checks; its message is the whole sentence, value
#: included (cgkit's config model raises it too, as ``cgkit.config.model.CHECK_ERROR``).
CHECK_ERROR = "cgkit"


#: The fewest visible characters (`visible_length`) of a waiver's text fields.
VISIBLE_MINIMUM = {"reason": 10, "approved_by": 2}


def visible_length(text: str) -> int:
    """How many characters of ``text`` a reader sees: not separators (spaces of any width) and not
    Unicode's "other" categories (control, format such as U+200B, private use, unassigned)."""
    return sum(1 for char in text if unicodedata.category(char)[0] not in "CZ")


class WaiverError(ValueError):
    """One or more waivers are invalid; the message lists each problem."""


class Waiver(BaseModel):
    """A documented exception to one policy rule for this municipality, until a date."""

    # Strict like every config model: no unknown keys, text where text is expected; ``expires`` a
    # date, written unquoted (a YAML date) or as YYYY-MM-DD text (JSON, or quoted as the schema allows).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    rule: str = Field(pattern=r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$", description="Policy rule id.")
    # reason and approver are counted without surrounding blanks: twelve spaces are no reason; and
    # `_visible` counts only what a reader sees: zero-width spaces or NUL characters are no reason either
    reason: Annotated[str, StringConstraints(strip_whitespace=True)] = Field(min_length=10, max_length=2000, description="Why the rule cannot be met, in a sentence.")
    approved_by: Annotated[str, StringConstraints(strip_whitespace=True)] = Field(min_length=2, max_length=200, description="Who approved the exception.")
    expires: dt.date = Field(description="Last day the waiver holds (YYYY-MM-DD).")

    @field_validator("reason", "approved_by")
    @classmethod
    def _visible(cls, value: str, info: Any) -> str:
        """Refuse text with fewer visible characters than the field's minimum (`visible_length`):
        text that decides whether a mandatory rule blocks must be readable by whoever reviews it."""
        least = VISIBLE_MINIMUM[info.field_name]
        if visible_length(value) < least:
            raise PydanticCustomError(CHECK_ERROR, "{field} has {count} visible character(s), at least {least} are "
                                      "needed (spaces, control and format characters such as zero-width spaces or "
                                      "NUL do not count); write {what} in words",
                                      {"field": info.field_name, "count": visible_length(value), "least": least,
                                       "what": {"reason": "why the rule cannot be met",
                                                "approved_by": "who approved the exception"}[info.field_name]})
        return value

    @field_validator("expires", mode="before")
    @classmethod
    def _a_day(cls, value: Any) -> dt.date:
        """``expires`` as a date: a YAML date, or YYYY-MM-DD text; anything else (a timestamp, a
        number, another date format) is refused with what to write instead."""
        if isinstance(value, str):
            value = _iso_date(value)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, (list, dict)) or value is None:
            shown = {list: "a list", dict: "a mapping"}.get(type(value), "null")
        else:
            shown = repr(value.isoformat() if isinstance(value, dt.datetime) else str(value)[:40])
        raise PydanticCustomError(CHECK_ERROR, "{value} is not a date; write the last day the waiver "
                                  "holds as YYYY-MM-DD, e.g. 2027-05-31", {"value": shown})

    @classmethod
    def parse(cls, data: Any, index: int = 0) -> "Waiver":
        """Build the waiver at position ``index`` of a list from its JSON/YAML mapping.

        Raises:
            WaiverError: ``data`` is not a mapping of the four fields with valid values; the message
                names ``waivers[index]``, each bad field and what was given.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise WaiverError("; ".join(_field_error(index, err) for err in e.errors())) from None

    def describe(self) -> str:
        """One line for reports: reason, approver, expiry."""
        return f"{self.reason} (approved by {self.approved_by}, until {self.expires.isoformat()})"

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form (the shape the pack config and municipality files use)."""
        return self.model_dump(mode="json")


def _iso_date(text: str) -> dt.date | str:
    """``text`` as a date when it is YYYY-MM-DD (exactly: not 20270531 or 2027-W22, which Python
    also reads), else unchanged (the model then refuses it, naming it)."""
    try:
        return dt.date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else text
    except ValueError:
        return text


def _field_error(index: int, error: Mapping[str, Any]) -> str:
    """``waivers[i].field: message (got value)`` for one pydantic error."""
    where = ".".join(str(p) for p in (f"waivers[{index}]", *error["loc"]))
    value = error.get("input")
    quiet = error["type"] in ("missing", CHECK_ERROR) or isinstance(value, (dict, list))
    shown = "" if quiet else f" (got {str(value)[:60]!r})"
    return f"{where}: {error['msg']}{shown}"


def parse_all(items: Any) -> list[Waiver]:
    """Parse a list of waiver mappings (Waiver objects pass through).

    Raises:
        WaiverError: ``items`` is not a list, or an item is malformed (every bad item named).
    """
    if items is not None and not isinstance(items, (list, tuple)):
        raise WaiverError(f"waivers must be a list of mappings, not {type(items).__name__}")
    parsed, errors = [], []
    for i, item in enumerate(items or ()):
        try:
            parsed.append(item if isinstance(item, Waiver) else Waiver.parse(item, i))
        except WaiverError as e:
            errors.append(str(e))
    if errors:
        raise WaiverError("; ".join(errors))
    return parsed


@dataclasses.dataclass(frozen=True)
class Problem:
    """What is wrong with the waiver at ``index`` of its list: the field to fix and a sentence."""

    index: int
    field: str
    message: str

    @property
    def where(self) -> str:
        """The field path in the municipality file, ``waivers[0].expires``."""
        return f"waivers[{self.index}].{self.field}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def latest_expiry(today: dt.date, max_days: int) -> dt.date:
    """The last ``expires`` a waiver of a mandatory rule may have: ``today`` plus ``max_days``."""
    return today + dt.timedelta(days=max_days)


def problems(waivers: Sequence[Waiver], levels: Mapping[str, Enforcement], today: dt.date | None = None,
             max_days: int = DEFAULT_MAX_WAIVER_DAYS) -> list[Problem]:
    """Every problem of a municipality's waivers, in list order.

    Args:
        waivers: the municipality's waivers, in file order.
        levels: every known rule id with its own enforcement (`policies.registry.enforcement_levels`).
        today: the day expiry and the limit are counted from (default: today).
        max_days: how far past ``today`` a waiver of a mandatory rule may expire.

    A waiver names an unknown rule (with the closest known id), repeats a rule an earlier waiver
    already waives, has expired, or waives a mandatory rule past ``today + max_days`` (the message
    gives the latest allowed date). Advisory rules never block, so their waivers have no limit.
    """
    today = today or dt.date.today()
    latest = latest_expiry(today, max_days)
    first: dict[str, int] = {}
    found = []
    for i, w in enumerate(waivers):
        if w.rule not in levels:
            close = difflib.get_close_matches(w.rule, sorted(levels), n=1, cutoff=0.6)
            found.append(Problem(i, "rule", f"unknown policy rule '{w.rule}'" + (f"; did you mean '{close[0]}'?" if close else "")))
        elif w.rule in first:
            found.append(Problem(i, "rule", f"{w.rule} is already waived by waivers[{first[w.rule]}]; "
                                            "one waiver per rule: merge the two"))
        first.setdefault(w.rule, i)
        if w.expires < today:
            found.append(Problem(i, "expires", f"waiver of {w.rule} expired on {w.expires.isoformat()} "
                                               f"(approved by {w.approved_by}); renew or remove it"))
        elif w.expires > latest and levels.get(w.rule) is Enforcement.MANDATORY:
            found.append(Problem(i, "expires", f"waiver of mandatory rule {w.rule} runs until {w.expires.isoformat()}, "
                                               f"past the environment's limit of {max_days} days (policy.max_waiver_days); "
                                               f"the latest allowed date is {latest.isoformat()}"))
    return found


def validate(waivers: Sequence[Waiver], levels: Mapping[str, Enforcement], today: dt.date | None = None,
             max_days: int = DEFAULT_MAX_WAIVER_DAYS) -> None:
    """Raise WaiverError listing every problem `problems` finds (nothing when there is none)."""
    found = problems(waivers, levels, today, max_days)
    if found:
        raise WaiverError("; ".join(map(str, found)))


def apply(findings: Iterable[Finding], waivers: Sequence[Waiver]) -> list[Finding]:
    """Mark the findings of waived rules as ``waived`` (with the reason); others pass unchanged."""
    by_rule = {w.rule: w for w in waivers}
    return [dataclasses.replace(f, status=Status.WAIVED, waiver_reason=by_rule[f.rule_id].describe())
            if f.rule_id in by_rule else f for f in findings]
