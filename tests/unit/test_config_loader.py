"""The layered loader: what a municipality gets from its file, its environment and the kit defaults."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from cgkit.config import loader, schema
from cgkit.errors import ConfigError


def write(root: Path, code: str, text: str) -> None:
    (loader.municipality_file(root, "sandbox", code)).write_text(text)


def test_minimal_file_takes_environment_defaults(scratch_root: Path) -> None:
    write(scratch_root, "GM0893", "code: GM0893\ndomain: bergen-l.sandbox.cgkit.test\n")
    config = loader.load_municipality(scratch_root, "sandbox", "gm0893")
    environment = loader.load_environment(scratch_root, "sandbox")
    assert config.name == "Bergen (L.)"
    assert config.size == environment.defaults.size
    assert sorted(config.apps) == sorted(environment.defaults.apps)
    assert config.database.mode == "in-cluster"
    assert config.namespace == "gm0893"
    assert config.stack == "sandbox.gm0893"


def test_municipality_entries_add_change_and_remove_apps(scratch_root: Path) -> None:
    write(scratch_root, "GM0344", "code: GM0344\ndomain: u.sandbox.cgkit.test\napps:\n"
          "  objecten: {enabled: false}\n  opennotificaties: {replicas: 3}\n")
    config = loader.load_municipality(scratch_root, "sandbox", "GM0344")
    assert "objecten" not in config.apps
    assert config.apps["opennotificaties"].replicas == 3
    assert config.apps["openzaak"].replicas is None


def test_external_database_keeps_its_settings(scratch_root: Path) -> None:
    write(scratch_root, "GM0344", "code: GM0344\ndomain: u.sandbox.cgkit.test\n"
          "database: {mode: external, host: pg.example.nl}\n")
    config = loader.load_municipality(scratch_root, "sandbox", "GM0344")
    assert (config.database.mode, config.database.host, config.database.port, config.database.sslmode) == (
        "external", "pg.example.nl", 5432, "require")


def test_missing_file_names_the_onboard_command(scratch_root: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        loader.load_municipality(scratch_root, "sandbox", "GM0344")
    assert "cgkit onboard GM0344 --env sandbox" in caught.value.render()


def test_unknown_environment_lists_the_known_ones(scratch_root: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        loader.load_environment(scratch_root, "production")
    assert "known: sandbox" in caught.value.render()


def test_environment_name_must_match_folder(scratch_root: Path) -> None:
    path = loader.environment_file(scratch_root, "sandbox")
    path.write_text(path.read_text().replace("name: sandbox", "name: test"))
    with pytest.raises(ConfigError) as caught:
        loader.load_environment(scratch_root, "sandbox")
    assert caught.value.issues[0].field == "name"


def test_waiver_valid_until_its_expiry_day(scratch_root: Path) -> None:
    write(scratch_root, "GM0344", "code: GM0344\ndomain: u.sandbox.cgkit.test\nwaivers:\n"
          "  - {rule: CGK-POD-007, reason: media cache on root fs, approved_by: CISO, expires: 2027-01-31}\n")
    assert loader.check_environment(scratch_root, "sandbox", today=datetime.date(2027, 1, 31)) == []
    assert len(loader.check_environment(scratch_root, "sandbox", today=datetime.date(2027, 2, 1))) == 1


def test_waiver_for_unknown_rule_is_an_error(scratch_root: Path) -> None:
    write(scratch_root, "GM0344", "code: GM0344\ndomain: u.sandbox.cgkit.test\nwaivers:\n"
          "  - {rule: CGK-POD-070, reason: media cache on root fs, approved_by: CISO, expires: 2027-01-31}\n")
    issues = loader.check_environment(scratch_root, "sandbox", today=datetime.date(2026, 11, 29),
                                      rule_ids={"CGK-POD-007"})
    assert [i.render() for i in issues] == [
        "environments/sandbox/municipalities/gm0344.yaml: waivers[0].rule: unknown policy rule "
        "'CGK-POD-070'; did you mean 'CGK-POD-007'?"]


def test_shipped_sandbox_files_are_valid(project_root: Path) -> None:
    assert loader.check_environment(project_root, "sandbox") == []
    assert {"GM0344", "GM0363", "GM0518", "GM0893", "GM0373", "GM1900"} <= set(
        loader.municipality_codes(project_root, "sandbox"))


def test_published_schemas_match_the_models(project_root: Path) -> None:
    for name, model in schema.SCHEMAS.items():
        published = (project_root / "environments" / "schema" / name).read_text()
        assert published == schema.schema_text(model), f"run `cgkit schema` to refresh {name}"
