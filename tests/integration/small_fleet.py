"""A small, fast fleet in a scratch project: municipalities whose tenants run one small app.

Used by tests/integration/test_fleet.py and benchmarks/fleet.py. The environment's default app set
becomes ``apps`` (a tenant with objecttypen alone is a namespace baseline, PostgreSQL, Redis and one
Django app: about 40 objects and 2 PersistentVolumes), so many tenants fit the sandbox quickly.
Municipality files that list their apps (GM0344) keep them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from cgkit import engine
from cgkit.config import loader
from cgkit.config.loader import environment_file
from cgkit.conventions import stack_name
from cgkit.onboard import onboard
from cgkit.stackops import engine_settings
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


@contextmanager
def files_put_back(root: Path, codes: tuple[str, ...]) -> Iterator[None]:
    """Keep ``codes``' municipality files of ``root``'s sandbox environment as they are now and put
    them back after (a file that was not there is removed; ``offboarded/`` records of them too):
    some codes are checked-in municipalities (GM0363, GM0518) that later modules deploy whole."""
    folder = environment_file(root, ENV).parent
    paths = [folder / "municipalities" / f"{code.lower()}.yaml" for code in codes]
    saved = {path: path.read_text() if path.is_file() else None for path in paths}
    try:
        yield
    finally:
        for path, text in saved.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)
        for code in codes:
            for record in (folder / "offboarded").glob(f"{code.lower()}*"):
                record.unlink()


def forget_tenants(root: Path, codes: list[str] | tuple[str, ...]) -> None:
    """Remove the stacks of ``codes`` from ``root``'s sandbox environment (on its current backend) and
    their municipality files, once they are destroyed: later modules then start from no stack of
    these codes, and `state migrate` copies no empty stack. A stack that still manages resources
    (its destroy failed) is left for the session's end to show."""
    settings = engine_settings(root, loader.load_environment(root, ENV), cluster=False)
    names = {s.name for s in engine.workspace(settings).list_stacks()}
    for code in codes:
        if stack_name(ENV, code) in names:
            try:
                engine.remove_stack(settings, stack_name(ENV, code))
            except engine.EngineError:
                continue
        (environment_file(root, ENV).parent / "municipalities" / f"{code.lower()}.yaml").unlink(missing_ok=True)
