"""Which catalog release each tenant runs: its stack's output ``release`` (cgkit.upgrade), read for a
selection of municipalities at once.

A tenant is ``current`` (the checkout's release), ``behind`` (an older release: ``up`` upgrades it),
``ahead`` (a release newer than the checkout's or unknown to it: ``up`` refuses to downgrade it),
``unrecorded`` (deployed before stacks recorded their release) or ``not deployed``.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cgkit import engine, upgrade
from cgkit.config.model import EnvironmentFile
from cgkit.conventions import stack_name
from cgkit.fleet.selection import WavePlan
from cgkit.stackops import engine_settings
from components import releases

STATES = ("current", "behind", "ahead", "unrecorded", "not deployed")


@dataclass(frozen=True)
class TenantRelease:
    """One tenant: its CBS ``code``, the ``release`` its stack records (None: none) and its ``state``
    (one of STATES)."""

    code: str
    release: str | None
    state: str

    def hop_text(self, target: str) -> str:
        """What ``up`` to ``target`` does to it: the hop, or why there is none."""
        if self.state == "not deployed":
            return f"not deployed: up deploys release {target}"
        if self.state == "ahead":
            return f"runs {self.release}, newer than {target}: up refuses (no downgrade)"
        return releases.hop(self.release if self.state != "unrecorded" else None, target).text()


def state_of(release: str | None, deployed: bool) -> str:
    """The STATES entry of a stack that records ``release``."""
    if not deployed:
        return "not deployed"
    if release is None:
        return "unrecorded"
    known = {r.version: r for r in releases.load_releases()}
    current = releases.current()
    if release == current.version:
        return "current"
    return "behind" if release in known and known[release].key < current.key else "ahead"


def releases_of(root: Path, environment: EnvironmentFile, plans: list[WavePlan], parallel: int) -> list[TenantRelease]:
    """The release of every tenant of ``plans``, read ``parallel`` stacks at a time (no cluster needed:
    only the state backend is read)."""
    settings = engine_settings(root, environment, cluster=False)

    def read(code: str) -> TenantRelease:
        stack = engine.existing_stack(settings, stack_name(environment.name, code))
        deployed, release = upgrade.recorded_release(stack) if stack is not None else (False, None)
        return TenantRelease(code, release, state_of(release, deployed))

    codes = [code for plan in plans for code in plan.codes]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(read, codes))


def counts(tenants: list[TenantRelease]) -> dict[str, int]:
    """How many tenants are in each state, in STATES order (states with none left out)."""
    found = Counter(t.state for t in tenants)
    return {state: found[state] for state in STATES if found[state]}
