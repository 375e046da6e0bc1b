"""Does a municipality's tenant fit its size? Checked before anything is deployed.

The ResourceQuota of a size tier admits only so many pods and so much cpu and memory; replicas set
in the municipality file beyond that would make the API server reject pods at admission, and the
update would wait for Deployments that never become Available. A file that sets replicas is
rendered under mocks (cgkit.render: about 2 CPU-s for a full tenant, measured 2026-12-07) and
compared with its quota (components.sizing.quota_shortfalls). A file that sets none is not: every
size tier's defaults, with every app on, are tested to fit (tests/unit/components/test_sizing.py),
and the quota depends on nothing else in the file (its size, apps.<app>.enabled and .replicas).
"""

from __future__ import annotations

from pathlib import Path

from cgkit.config.loader import municipality_file
from cgkit.config.model import MunicipalityConfig
from cgkit.errors import ConfigIssue


def _sets_replicas(cfg: MunicipalityConfig) -> bool:
    """Tell whether the file sets replicas itself (the size defaults are tested to fit)."""
    return any(settings.replicas is not None for settings in cfg.apps.values())


def capacity_issues(root: Path, cfg: MunicipalityConfig) -> list[ConfigIssue]:
    """Return one issue per quota the tenant of ``cfg`` would exceed at a rolling update or a release
    (ConfigIssue on the field ``size`` of its file); [] when it fits or sets no replicas itself."""
    if not _sets_replicas(cfg):
        return []
    from cgkit.render import render_municipality  # runs the program under mocks
    from components.sizing import quota_shortfalls

    path = municipality_file(root, cfg.env, cfg.code).relative_to(root)
    return [ConfigIssue(path, None, "size", f"{shortfall}; lower apps.<app>.replicas or choose a larger size "
                                            f"than {cfg.size}")
            for shortfall in quota_shortfalls(render_municipality(cfg))]
