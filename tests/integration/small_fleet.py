"""A small, fast fleet in a scratch project: municipalities whose tenants run one small app.

Used by tests/integration/test_fleet.py and benchmarks/fleet.py. The environment's default app set
becomes ``apps`` (a tenant with objecttypen alone is a namespace baseline, PostgreSQL, Redis and one
Django app: about 40 objects and 2 PersistentVolumes), so many tenants fit the sandbox quickly.
Municipality files that list their apps (GM0344) keep them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cgkit.config.loader import environment_file
from cgkit.onboard import onboard
from components.catalog import load_catalog

ENV = "sandbox"


def make_small_fleet(root: Path, codes: list[str], apps: tuple[str, ...] = ("objecttypen",),
                     waves: list[dict] | None = None) -> None:
    """Set the sandbox environment of ``root`` to default ``apps`` at size S (and ``waves`` when given),
    and write a default municipality file for each of ``codes`` (overwriting any)."""
    path = environment_file(root, ENV)
    environment = yaml.safe_load(path.read_text())
    environment["defaults"]["apps"] = list(apps)
    environment["defaults"]["size"] = "S"
    if waves is not None:
        environment["waves"] = waves
    path.write_text(yaml.safe_dump(environment, sort_keys=False))
    for code in codes:
        onboard(root, ENV, code, force=True)


def small_tenant(root: Path, code: str, domain: str | None = None) -> Path:
    """Write ``code``'s municipality file in ``root``'s sandbox environment (overwriting any) with
    objecttypen as its only app, size S, whatever the environment's defaults; return the file."""
    path = onboard(root, ENV, code, domain=domain, force=True)
    data = yaml.safe_load(path.read_text())
    data["size"] = "S"
    data["apps"] = {key: ({} if key == "objecttypen" else {"enabled": False}) for key in load_catalog()}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
