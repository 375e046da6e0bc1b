"""Catalog releases: the catalog as a whole has a version, and each tenant's stack records the one it runs.

components/releases.yaml lists the releases, newest first. A release is the whole catalog at that
version (every app's image tag and settings): ``digest`` is the SHA-256 of the parsed catalog
(`catalog_digest`), so changing components/catalog.yaml without adding a release fails
tests/unit/test_releases.py, and ``images`` keeps each app's tag so that a hop between two
releases can be shown after the older catalog is gone. Versions are CalVer ``YYYY.MM.N``.

The municipality program exports the release it deploys (stack output ``release``); ``cgkit fleet
status`` reads it back per tenant, and ``cgkit fleet preview|up --release R`` shows each tenant's
hop (`hop`) before it runs.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cgkit.config.yamlsource import CONFIG_LIMITS, check_bounds
from cgkit.errors import ConfigError, ConfigIssue
from components.catalog import AppSpec, load_catalog

VERSION_PATTERN = r"^20[0-9]{2}\.(0[1-9]|1[0-2])\.[0-9]+$"


class Release(BaseModel):
    """One entry of components/releases.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=VERSION_PATTERN, description="CalVer YYYY.MM.N")
    date: dt.date
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="catalog_digest of the catalog at this release")
    images: dict[str, str] = Field(description="app key -> image tag")
    notes: str = ""

    @property
    def key(self) -> tuple[int, int, int]:
        """The version as numbers, for ordering."""
        year, month, n = self.version.split(".")
        return int(year), int(month), int(n)


@dataclass(frozen=True)
class Hop:
    """What moving a tenant from release ``source`` (None: never recorded) to ``target`` changes:
    ``passed`` releases on the way (the target counted), and per app ``(key, old tag, new tag)``
    whose image changes (an app new in the target has old tag None, one dropped has new tag None)."""

    source: str | None
    target: str
    passed: int
    images: tuple[tuple[str, str | None, str | None], ...]

    def text(self) -> str:
        """``2026.11.0 -> 2026.12.0 (1 release): openzaak 1.29.0 -> 1.30.0``; ``2026.12.0 (current)``."""
        if self.source == self.target:
            return f"{self.target} (current)"
        changes = ", ".join(f"{key} {old or 'new'} -> {new or 'removed'}" for key, old, new in self.images)
        head = f"{self.source or 'unrecorded'} -> {self.target}"
        return f"{head} ({self.passed} release{'s' if self.passed != 1 else ''})" + (f": {changes}" if changes else "")


def catalog_digest(catalog: dict[str, AppSpec]) -> str:
    """SHA-256 (hex) of the parsed catalog: every app's validated entry as canonical JSON."""
    data = {key: app.model_dump(mode="json") for key, app in catalog.items()}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_releases(data: object) -> tuple[Release, ...]:
    """Validate the release list (as read from YAML).

    Raises:
        ValueError: not a list of releases (pydantic's ValidationError is one), or not newest first
            with unique versions.
    """
    if not isinstance(data, list) or not data:
        raise ValueError("releases.yaml: expected a non-empty list of releases, newest first")
    releases = tuple(TypeAdapter(list[Release]).validate_python(data))
    for newer, older in zip(releases, releases[1:]):
        if newer.key <= older.key:
            raise ValueError(f"releases.yaml: {newer.version} is listed before {older.version}; newest first, "
                             "each version once")
    return releases


#: Where the release list lives, as errors name it.
FILE = "components/releases.yaml"


@functools.cache
def load_releases() -> tuple[Release, ...]:
    """The packaged releases, newest first (`read_releases` of components/releases.yaml)."""
    return read_releases(resources.files("components").joinpath("releases.yaml").read_text(encoding="utf-8"))


def read_releases(text: str) -> tuple[Release, ...]:
    """The releases of ``text`` (the YAML of components/releases.yaml), newest first.

    Raises:
        ConfigError: not YAML, too large or too deep (``yamlsource.check_bounds``), or not a valid
            release list (the entry and field named).
    """
    check_bounds(text, FILE, CONFIG_LIMITS)  # valid YAML, within size and depth (as every config file)
    try:
        data = yaml.safe_load(text)
    except ValueError as invalid:  # a date YAML reads that the calendar lacks
        raise ConfigError([ConfigIssue(FILE, None, "", f"not YAML: {invalid}")]) from None
    try:
        return parse_releases(data)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        raise ConfigError([ConfigIssue(FILE, None, ".".join(str(p) for p in first["loc"]), first["msg"])]) from None
    except ValueError as invalid:
        raise ConfigError([ConfigIssue(FILE, None, "", str(invalid).removeprefix("releases.yaml: "))]) from None


def current() -> Release:
    """The newest release: the one the checked-out catalog must be.

    Raises:
        ConfigError: the release list is invalid, or catalog.yaml is not the newest release (its digest
            differs: the catalog was changed without a release).
    """
    newest = load_releases()[0]
    digest = catalog_digest(load_catalog())
    if digest != newest.digest:
        raise ConfigError([ConfigIssue(FILE, None, "", f"components/catalog.yaml is not release {newest.version} "
                                       f"(its digest is {digest}, the release's {newest.digest}): a changed catalog "
                                       "is a new release; add one, newest first, with that digest")])
    return newest


def find(version: str) -> Release:
    """The release ``version``.

    Raises:
        ValueError: no such release (the known ones are named).
    """
    for release in load_releases():
        if release.version == version.strip():
            return release
    raise ValueError(f"no release {version[:40]!r}; releases: {', '.join(r.version for r in load_releases())}")


def hop(source: str | None, target: str) -> Hop:
    """The `Hop` from release ``source`` (None: the stack records none) to ``target``.

    Raises:
        ValueError: ``target`` is not a release; ``source`` is not one this checkout knows (a newer
            checkout deployed it) or is newer than ``target`` (a downgrade: restore a backup instead).
    """
    to = find(target)
    if source is None:
        return Hop(None, to.version, sum(1 for r in load_releases() if r.key <= to.key), ())
    start = find(source)
    if start.key > to.key:
        raise ValueError(f"release {to.version} is older than {start.version}: cgkit does not downgrade (the "
                         "migrations of the newer release may not run backwards); restore a backup instead")
    keys = list(dict.fromkeys([*to.images, *start.images]))
    images = tuple((k, start.images.get(k), to.images.get(k)) for k in keys
                   if start.images.get(k) != to.images.get(k))
    passed = sum(1 for r in load_releases() if start.key < r.key <= to.key)
    return Hop(start.version, to.version, passed, images)


def catalog_images() -> dict[str, str]:
    """Each app's image tag in the checked-out catalog."""
    return {key: app.image.tag for key, app in load_catalog().items()}
