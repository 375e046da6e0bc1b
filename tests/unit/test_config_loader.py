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


TODAY = datetime.date(2026, 12, 2)
MUNICIPALITY = "environments/sandbox/municipalities/gm0344.yaml"


def waivers(root: Path, *entries: tuple[str, datetime.date]) -> None:
    """GM0344's file with one waiver per (rule, expires), each on its own line (line 4 onwards)."""
    write(root, "GM0344", "code: GM0344\ndomain: u.sandbox.cgkit.test\nwaivers:\n" + "".join(
        f"  - {{rule: {rule}, reason: media cache on root fs, approved_by: CISO, expires: {expires}}}\n"
        for rule, expires in entries))


def set_policy(root: Path, text: str) -> None:
    path = loader.environment_file(root, "sandbox")
    path.write_text(path.read_text().split("\npolicy:")[0] + "\n" + text)


def test_waiver_for_unknown_rule_is_an_error(scratch_root: Path) -> None:
    waivers(scratch_root, ("CGK-PDO-007", TODAY))
    assert [i.render() for i in loader.check_environment(scratch_root, "sandbox", today=TODAY)] == [
        f"{MUNICIPALITY}:4: waivers[0].rule: unknown policy rule 'CGK-PDO-007'; did you mean 'CGK-POD-007'?"]


def test_a_mandatory_rule_may_be_waived_up_to_the_limit_and_not_a_day_longer(scratch_root: Path) -> None:
    assert loader.load_environment(scratch_root, "sandbox").policy.max_waiver_days == 180
    waivers(scratch_root, ("CGK-POD-007", TODAY + datetime.timedelta(days=180)))
    assert loader.check_environment(scratch_root, "sandbox", today=TODAY) == []
    waivers(scratch_root, ("CGK-POD-007", TODAY + datetime.timedelta(days=181)))
    latest = (TODAY + datetime.timedelta(days=180)).isoformat()
    assert [i.render() for i in loader.check_environment(scratch_root, "sandbox", today=TODAY)] == [
        f"{MUNICIPALITY}:4: waivers[0].expires: waiver of mandatory rule CGK-POD-007 runs until 2027-06-01, past "
        f"the environment's limit of 180 days (policy.max_waiver_days); the latest allowed date is {latest}"]


def test_the_limit_stops_preview_and_up_too(scratch_root: Path) -> None:
    waivers(scratch_root, ("CGK-POD-007", TODAY + datetime.timedelta(days=181)))
    with pytest.raises(ConfigError) as caught:
        loader.load_municipality(scratch_root, "sandbox", "GM0344", today=TODAY)
    assert caught.value.issues[0].field == "waivers[0].expires"


def test_the_environment_sets_the_limit(scratch_root: Path) -> None:
    set_policy(scratch_root, "policy:\n  max_waiver_days: 365\n")
    waivers(scratch_root, ("CGK-POD-007", TODAY + datetime.timedelta(days=365)))
    assert loader.check_environment(scratch_root, "sandbox", today=TODAY) == []


def test_an_advisory_rule_has_no_waiver_limit(scratch_root: Path) -> None:
    waivers(scratch_root, ("CGK-POD-011", TODAY + datetime.timedelta(days=1000)))
    assert loader.check_environment(scratch_root, "sandbox", today=TODAY) == []


def test_a_rule_waived_twice_is_an_error(scratch_root: Path) -> None:
    waivers(scratch_root, ("CGK-POD-007", TODAY), ("CGK-POD-007", TODAY + datetime.timedelta(days=30)))
    assert [i.render() for i in loader.check_environment(scratch_root, "sandbox", today=TODAY)] == [
        f"{MUNICIPALITY}:5: waivers[1].rule: CGK-POD-007 is already waived by waivers[0]; one waiver per rule: "
        "merge the two"]


def test_environment_policy_defaults_to_mandatory(scratch_root: Path) -> None:
    set_policy(scratch_root, "")
    policy = loader.load_environment(scratch_root, "sandbox").policy
    assert (policy.enforcement, policy.max_waiver_days) == ("mandatory", 180)


def test_environment_policy_can_be_advisory(scratch_root: Path) -> None:
    set_policy(scratch_root, "policy:\n  enforcement: advisory\n")
    assert loader.load_environment(scratch_root, "sandbox").policy.enforcement == "advisory"


@pytest.mark.parametrize("text, message", [
    ("policy:\n  enforcement: strict\n", "policy.enforcement: Input should be 'mandatory' or 'advisory' (got 'strict')"),
    ("policy:\n  max_waiver_days: 0\n", "policy.max_waiver_days: Input should be greater than or equal to 1 (got 0)"),
    ("policy:\n  enforcment: advisory\n", "policy.enforcment: unknown field; did you mean 'enforcement'?"),
])
def test_a_bad_policy_section_names_the_field_and_what_is_valid(scratch_root: Path, text: str, message: str) -> None:
    set_policy(scratch_root, text)
    lines = loader.environment_file(scratch_root, "sandbox").read_text().splitlines()
    line = lines.index("policy:") + 2  # the field under it, counted from 1
    with pytest.raises(ConfigError) as caught:
        loader.load_environment(scratch_root, "sandbox")
    assert [i.render() for i in caught.value.issues] == [f"environments/sandbox/environment.yaml:{line}: {message}"]


def test_shipped_sandbox_files_are_valid(project_root: Path) -> None:
    assert loader.check_environment(project_root, "sandbox") == []
    assert {"GM0344", "GM0363", "GM0518", "GM0893", "GM0373", "GM1900"} <= set(
        loader.municipality_codes(project_root, "sandbox"))


def test_published_schemas_match_the_models(project_root: Path) -> None:
    for name, model in schema.SCHEMAS.items():
        published = (project_root / "environments" / "schema" / name).read_text()
        assert published == schema.schema_text(model), f"run `cgkit schema` to refresh {name}"
