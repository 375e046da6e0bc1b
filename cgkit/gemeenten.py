"""The CBS list of Dutch municipalities (gemeenten), and the one way a name becomes a Kubernetes name.

Source: ``cgkit/data/gemeenten.csv``, the CBS classification "Gemeenten alfabetisch 2023" (columns
code, name, province), 342 rows, cross-checked against CBS "Gebieden in Nederland 2026". A
municipality is identified by its code (``GM`` + four digits), never by its name: two are called
Bergen (GM0373 Bergen (NH.), GM0893 Bergen (L.)).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cgkit.errors import UnknownMunicipalityError

CODE_PATTERN = re.compile(r"^GM\d{4}$")
_LABEL_MAX = 63  # RFC 1123 label / Kubernetes label value length limit


@dataclass(frozen=True)
class Gemeente:
    """One municipality: CBS ``code`` (``"GM0344"``), official ``name``, ``province``."""

    code: str
    name: str
    province: str


@cache
def all_gemeenten() -> dict[str, Gemeente]:
    """Return every municipality keyed by CBS code, in code order (342 entries)."""
    text = resources.files("cgkit").joinpath("data/gemeenten.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {row["code"]: Gemeente(row["code"], row["name"], row["province"]) for row in rows}


def lookup(code: str) -> Gemeente:
    """Return the municipality with CBS ``code`` (case-insensitive, e.g. ``"gm0344"``).

    Raises:
        UnknownMunicipalityError: the code is malformed or not in the CBS list.
    """
    normal = code.strip().upper()
    if not CODE_PATTERN.match(normal):
        raise UnknownMunicipalityError(
            f"'{code}' is not a CBS municipality code", hint="a code is GM and four digits, e.g. GM0344"
        )
    found = all_gemeenten().get(normal)
    if found is None:
        raise UnknownMunicipalityError(
            f"{normal} is not in the CBS list of 342 municipalities",
            hint="see cgkit/data/gemeenten.csv for the valid codes",
        )
    return found


def slug(name: str) -> str:
    """Return an RFC 1123 label (``[a-z0-9-]``, at most 63 characters) made from a name.

    Accents are folded (``"Súdwest-Fryslân"`` -> ``"sudwest-fryslan"``), apostrophes dropped
    (``"'s-Gravenhage"`` -> ``"s-gravenhage"``), every other run of non-alphanumerics becomes one
    hyphen (``"Bergen (NH.)"`` -> ``"bergen-nh"``). Not unique across municipalities; use it for
    display labels only, never as an identifier (identify by code).

    Raises:
        ValueError: the name has no letter or digit.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"['\u2019`]", "", folded.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if not text:
        raise ValueError(f"name {name!r} has no letter or digit to make a slug from")
    return text[:_LABEL_MAX].rstrip("-")


def provinces() -> list[str]:
    """Return the twelve province names of the CBS list, sorted (``"Fryslân"``, ``"Noord-Brabant"``, ...)."""
    return sorted({g.province for g in all_gemeenten().values()})


def in_province(province: str) -> list[Gemeente]:
    """Return the municipalities of ``province`` in code order; the name matches case- and accent-insensitively
    (``"friesland"`` is not ``"Fryslân"``, but ``"fryslan"`` is).

    Raises:
        UnknownMunicipalityError: no province has that name (the message lists the valid ones).
    """
    wanted = slug(province) if any(ch.isalnum() for ch in province) else None
    found = [g for g in all_gemeenten().values() if slug(g.province) == wanted]
    if not found:
        raise UnknownMunicipalityError(f"'{province}' is not a province of the CBS list",
                                       hint=f"one of: {', '.join(provinces())}")
    return found
