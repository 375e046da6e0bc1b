"""The Haven checks as data: checks.yaml, read and checked against the verdict functions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from cgkit.haven.verdicts import PROBES

CATALOG = Path(__file__).with_name("checks.yaml")


@dataclass(frozen=True)
class Check:
    """One mandatory Haven check. ``title``: as the Haven Compliancy Checker prints it; ``probe``:
    the verdict function's name; ``how``: how cgkit decides it (shown with the result)."""

    id: str
    category: str
    title: str
    probe: str
    how: str


FIELDS = tuple(f.name for f in fields(Check))


def load(path: Path = CATALOG) -> tuple[Check, ...]:
    """The checks in file order.

    Raises:
        ValueError: an entry lacks a field, repeats an id, or names a probe that does not exist
            (the message names the file and the entry).
    """
    entries = yaml.safe_load(path.read_text())["checks"]
    checks = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            raise ValueError(f"{path}: checks[{i}]: has {sorted(entry) if isinstance(entry, dict) else entry!r}; "
                             f"a check has exactly the fields {', '.join(FIELDS)}")
        check = Check(**entry)
        if check.probe not in PROBES:
            raise ValueError(f"{path}: checks[{i}] ({check.id}): unknown probe {check.probe!r}; "
                             f"known: {', '.join(sorted(PROBES))}")
        if any(c.id == check.id for c in checks):
            raise ValueError(f"{path}: checks[{i}]: id {check.id} repeats an earlier entry")
        checks.append(check)
    return tuple(checks)
