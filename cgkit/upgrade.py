"""Upgrades take a backup first: before ``up`` moves a backed-up tenant to another catalog release.

A tenant's stack records the release it runs (output ``release``, components/releases.py).
`pending_hop` refuses an ``up`` that would downgrade (a release older than the stack's, or one this
checkout does not know). When ``up`` deploys a different release (or the stack predates releases)
and the tenant is backed up by cgkit, `backup_before_upgrade` runs the tenant's backup Job and waits for it; a failed backup stops
the ``up`` before anything changed. The migrations then run once in their Job before the app rolls
(components/app.py), so a failed migration leaves the old pods serving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cgkit import backup_jobs
from cgkit.backups import BackupError
from cgkit.cluster import api_client
from cgkit.config.model import MunicipalityConfig
from cgkit.errors import CgkitError
from components import releases

#: The stack output that records the release (stacks/municipality.py).
OUTPUT = "release"


class ReleaseRefused(CgkitError):
    """``up`` would move a tenant to an older release, or from one this checkout does not know."""

    reference = "release-refused"


def recorded_release(stack: Any) -> tuple[bool, str | None]:
    """Whether ``stack`` was deployed (has outputs), and the release it records (None: none)."""
    outputs = stack.outputs()
    value = outputs.get(OUTPUT)
    return bool(outputs), (str(value.value) if value is not None else None)


def pending_hop(stack: Any) -> releases.Hop | None:
    """The hop ``up`` of ``stack`` makes to the checked-out release; None when it was never deployed.

    Raises:
        ReleaseRefused: the stack records a release newer than the checkout's, or one it does not know
            (a newer checkout deployed it): ``up`` would downgrade.
        ConfigError: the release list is invalid or the catalog is not its newest release.
    """
    target = releases.current().version
    deployed, recorded = recorded_release(stack)
    if not deployed:
        return None
    try:
        return releases.hop(recorded, target)
    except ValueError as refused:
        raise ReleaseRefused(f"stack {stack.name} runs release {recorded}: {refused}",
                             hint="update this checkout to that release or later (git pull)") from None


def backup_before_upgrade(cfg: MunicipalityConfig, hop: releases.Hop | None, say: Callable[[str], object]) -> str | None:
    """Back ``cfg``'s tenant up when ``hop`` changes its release; return the backup's id, or None when
    no backup was needed (not backed up by cgkit, never deployed, same release) or none can be made
    yet (backups turned on since its last ``up``: no CronJob; said through ``say``).

    Raises:
        BackupError: the backup failed (its result is in the message); nothing was upgraded.
    """
    if cfg.backups is None or hop is None or hop.source == hop.target:
        return None
    api = api_client(cfg.environment)
    if not backup_jobs.has_schedule(api, cfg.namespace):
        say(f"{cfg.code}: no backup before the upgrade {hop.text()}: backups were turned on since its last up "
            "(this up creates its backup CronJob)")
        return None
    result = backup_jobs.backup_now(api, cfg.namespace)
    if not result.succeeded:
        raise BackupError(f"the backup before the upgrade {hop.text()} failed: "
                          f"{result.failure}; "
                          "nothing was upgraded", hint=f"kubectl -n {cfg.namespace} get events")
    backup_id = result.message.split(" ", 1)[0]
    say(f"{cfg.code}: backed up {backup_id} before the upgrade {hop.text()}")
    return backup_id
