"""Which municipality stacks a fleet run covers, and in which waves.

Input: the environment's municipality files (``loader.municipality_codes``), narrowed by CBS codes,
a province, or a wave name; output: ``WavePlan``s in rollout order. The waves come from the
environment file (``waves:``, DESIGN.md decision 7): listed codes first, ``rest`` for everything not
in an earlier wave. Municipalities that no wave claims (no ``rest`` wave, or no waves at all) go in a
final wave named ``rest``. A ``Shard`` (``--shard K/N``) keeps the codes of one of N disjoint parts,
so N runners on one shared backend split an environment without overlap.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cgkit.config.model import Wave
from cgkit.errors import CgkitError
from cgkit.gemeenten import in_province, lookup

REST = "rest"


class SelectionError(CgkitError):
    """The selection names no stack, or a wave the environment does not have."""

    reference = "fleet-selection"


@dataclass(frozen=True)
class WavePlan:
    """One wave to run: its ``name``, the CBS ``codes`` in it (upper case, in order), and the share of
    failed stacks (0.0-1.0) above which the rollout stops before the next wave."""

    name: str
    codes: tuple[str, ...]
    max_failure_rate: float = 0.0


MAX_SHARDS = 64


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count`` disjoint parts of the CBS codes.

    A code's part is its SHA-256 modulo ``count``: total (every code is in exactly one part),
    disjoint, the same on every machine and run, and stable under onboarding — a new municipality
    lands in one part and no other code moves (a code's part depends on nothing but the code).
    The price of that stability: parts are even only in expectation. Over today's 342 codes, 2 parts
    hold 158 and 184, 4 parts 66 to 98 (a runner's share of the work varies by about ±20 %).
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"2/4"`` → Shard(2, 4).

        Raises:
            SelectionError: not ``K/N`` with 1 ≤ K ≤ N ≤ 64 (the message quotes the text).
        """
        match = re.fullmatch(r"\s*([0-9]{1,3})\s*/\s*([0-9]{1,3})\s*", text)  # ASCII digits only
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= MAX_SHARDS:
            raise SelectionError(f"--shard {text!r}: expected K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. 1/2")
        return cls(int(match.group(1)), int(match.group(2)))

    def holds(self, code: str) -> bool:
        """Whether ``code`` (a CBS code, any case) is in this part."""
        digest = hashlib.sha256(code.upper().encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def select_codes(onboarded: list[str], codes: list[str] | None = None, province: str | None = None) -> list[str]:
    """Return the CBS codes a run covers, upper case and sorted.

    Args:
        onboarded: the codes that have a municipality file in the environment.
        codes: explicit codes (any case); these are taken even without a file, so the run reports the
            missing file as that stack's config error. None = every onboarded municipality.
        province: keep only municipalities of this province.

    Raises:
        UnknownMunicipalityError: a code or the province is not in the CBS list.
        SelectionError: nothing is left to run.
    """
    chosen = {lookup(code).code for code in codes} if codes else set(onboarded)
    if province is not None:  # "" is an unknown province, not "every province"
        chosen &= {g.code for g in in_province(province)}
    if not chosen:
        raise SelectionError("no municipality stack matches the selection",
                             hint="onboard municipalities first (cgkit onboard --all --env ENV), or widen the selection")
    return sorted(chosen)


def plan_waves(waves: list[Wave], codes: list[str], only: str | None = None) -> list[WavePlan]:
    """Order ``codes`` into the environment's ``waves``; drop waves left empty.

    Args:
        waves: the environment file's waves, in rollout order.
        codes: the selected codes (upper case).
        only: run just the wave of this name.

    Raises:
        SelectionError: ``only`` names no wave of the environment, or its wave has none of ``codes``.
    """
    remaining = list(codes)
    plans = []
    for wave in waves:
        members = remaining if wave.municipalities == REST else [c for c in remaining if c in wave.municipalities]
        plans.append(WavePlan(wave.name, tuple(members), wave.max_failure_rate))
        remaining = [c for c in remaining if c not in members]
    if remaining:
        plans.append(WavePlan(REST, tuple(remaining)))
    if only is not None:
        names = [w.name for w in waves] + ([REST] if remaining else [])
        if only not in names:
            raise SelectionError(f"the environment has no wave '{only}'", hint=f"waves: {', '.join(names)}")
        plans = [p for p in plans if p.name == only]
    plans = [p for p in plans if p.codes]
    if not plans:
        raise SelectionError(f"wave '{only}' has none of the selected municipalities")
    return plans


def in_shard(plans: list[WavePlan], shard: Shard) -> list[WavePlan]:
    """The part of ``plans`` that ``shard`` holds: each wave keeps its codes in that part, and waves
    left empty are dropped. Applied after the waves are planned, so N runners given one selection
    and the N parts run each of its stacks exactly once, in the same waves. [] when the part holds
    none of them (another runner has the work; not an error). Each runner judges a wave's
    ``max_failure_rate`` over its own part."""
    kept = [WavePlan(p.name, tuple(c for c in p.codes if shard.holds(c)), p.max_failure_rate) for p in plans]
    return [p for p in kept if p.codes]
