"""Which municipality stacks a fleet run covers, and in which waves.

Input: the environment's municipality files (``loader.municipality_codes``), narrowed by CBS codes,
a province, or a wave name; output: ``WavePlan``s in rollout order. The waves come from the
environment file (``waves:``, DESIGN.md decision 7): listed codes first, ``rest`` for everything not
in an earlier wave. Municipalities that no wave claims (no ``rest`` wave, or no waves at all) go in a
final wave named ``rest``.
"""

from __future__ import annotations

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
    if province:
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
