"""Catalog releases (components/releases.py): the checked-out catalog is the newest release, the
list is well-ordered, and a hop names what changes between two releases."""

from __future__ import annotations

import pytest

from cgkit.errors import ConfigError
from components import releases
from components.catalog import load_catalog

OLDER = {"version": "2026.11.0", "date": "2026-11-01", "digest": "a" * 64,
         "images": {"openzaak": "1.29.0", "objecten": "3.6.1", "objecttypen": "3.4.0"}}
NEWER = {"version": "2026.12.0", "date": "2026-12-07", "digest": "b" * 64,
         "images": {"openzaak": "1.30.0", "objecten": "3.6.1", "openklant": "2.18.0"}}


def test_the_catalog_is_the_newest_release():
    newest = releases.current()
    assert newest.digest == releases.catalog_digest(load_catalog()), \
        "catalog.yaml changed: add a release to components/releases.yaml (its digest: releases.catalog_digest)"
    assert newest.images == releases.catalog_images()


def test_the_digest_changes_with_a_tag_and_not_with_formatting():
    catalog = load_catalog()
    bumped = {**catalog, "openzaak": catalog["openzaak"].model_copy(
        update={"image": catalog["openzaak"].image.model_copy(update={"tag": "1.30.1"})})}
    assert releases.catalog_digest(bumped) != releases.catalog_digest(catalog)
    assert releases.catalog_digest(dict(catalog)) == releases.catalog_digest(catalog)


@pytest.mark.parametrize("data, message", [
    ([OLDER, NEWER], "2026.11.0 is listed before 2026.12.0"),
    ([NEWER, NEWER], "listed before"),
    ([{**NEWER, "version": "26.12"}], "String should match pattern"),
    ([], "non-empty list"),
    ([{**NEWER, "extra": 1}], "Extra inputs are not permitted")])
def test_a_bad_release_list_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        releases.parse_releases(data)


@pytest.fixture
def two_releases(monkeypatch):
    monkeypatch.setattr(releases, "load_releases", lambda: releases.parse_releases([NEWER, OLDER]))


def test_a_hop_names_each_image_that_changes(two_releases):
    hop = releases.hop("2026.11.0", "2026.12.0")
    assert hop.passed == 1
    assert hop.images == (("openzaak", "1.29.0", "1.30.0"), ("openklant", None, "2.18.0"), ("objecttypen", "3.4.0", None))
    assert hop.text() == ("2026.11.0 -> 2026.12.0 (1 release): openzaak 1.29.0 -> 1.30.0, openklant new -> 2.18.0, "
                          "objecttypen 3.4.0 -> removed")
    assert releases.hop("2026.12.0", "2026.12.0").text() == "2026.12.0 (current)"
    assert releases.hop(None, "2026.12.0").text() == "unrecorded -> 2026.12.0 (2 releases)"


@pytest.mark.parametrize("source, target, message", [
    ("2026.12.0", "2026.11.0", "cgkit does not downgrade"),
    ("2027.01.0", "2026.12.0", "no release '2027.01.0'; releases: 2026.12.0, 2026.11.0"),
    ("2026.11.0", "2026.13.0", "no release")])
def test_a_downgrade_or_an_unknown_release_is_refused(two_releases, source, target, message):
    with pytest.raises(ValueError, match=message):
        releases.hop(source, target)


@pytest.mark.parametrize("text, message", [
    ("- version: [", "components/releases.yaml:1: invalid YAML"),
    ("[" * 5000 + "]" * 5000, "components/releases.yaml:1: nested deeper than 32 levels"),
    ("{}", "components/releases.yaml: expected a non-empty list of releases"),
    ("- {version: '2026.13.0', date: 2026-12-07, digest: '" + "a" * 64 + "', images: {}}",
     "components/releases.yaml: 0.version: String should match pattern"),
    ("- {version: '2026.12.0', date: 2026-13-07, digest: '" + "a" * 64 + "', images: {}}",
     "components/releases.yaml: not YAML: month must be in 1..12")])
def test_a_malformed_release_file_is_named_with_its_entry(text, message):
    with pytest.raises(ConfigError) as invalid:
        releases.read_releases(text)
    assert invalid.value.render().startswith(message), invalid.value.render()


def test_a_catalog_changed_without_a_release_is_refused_where_it_is_deployed(monkeypatch):
    monkeypatch.setattr(releases, "load_releases", lambda: releases.parse_releases([{**NEWER, "digest": "c" * 64}]))
    with pytest.raises(ConfigError) as refused:
        releases.current()
    assert "components/catalog.yaml is not release 2026.12.0" in refused.value.render()
