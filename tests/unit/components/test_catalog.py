"""The app catalog: complete, pinned, consistent; and the model rejects broken entries."""

from __future__ import annotations

import copy

import pytest
import yaml
from importlib import resources

from components.catalog import AppSpec, load_catalog, parse_catalog

EXPECTED = {"openzaak", "opennotificaties", "objecten", "objecttypen", "openklant", "openformulieren"}


def raw_catalog() -> dict:
    return yaml.safe_load(resources.files("components").joinpath("catalog.yaml").read_text())


def test_catalog_has_the_six_common_ground_apps():
    assert set(load_catalog()) == EXPECTED


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_entry_is_pinned_and_complete(key):
    app = load_catalog()[key]
    assert app.key == key
    assert app.image.tag not in ("", "latest") and app.image.repository.startswith("docker.io/")
    assert app.port == 8000
    assert app.probes.liveness.startswith("/") and app.probes.readiness.startswith("/")
    assert app.settings_module.endswith(".conf.docker")
    assert app.roles.web.resources.limits.memory


def test_facts_from_the_charts():
    cat = load_catalog()
    assert cat["openzaak"].image.ref == "docker.io/openzaak/open-zaak:1.30.0"
    assert cat["openzaak"].needs_postgis and cat["objecten"].needs_postgis
    assert not cat["openklant"].needs_postgis
    assert set(cat["openzaak"].celery_roles) == {"worker", "beat"}
    assert cat["openzaak"].roles.worker.command == ["/celery_worker.sh"]
    assert cat["openzaak"].roles.beat.command == ["/celery_beat.sh"]
    assert cat["objecttypen"].celery_roles == {} and cat["objecttypen"].media is None
    assert cat["objecten"].depends_on == ("objecttypen", "opennotificaties")
    assert (cat["openzaak"].redis.cache_db, cat["openzaak"].redis.celery_db) == (4, 5)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_celery_role_has_exec_health_checks(key):
    for role, spec in load_catalog()[key].celery_roles.items():
        assert spec.readiness and spec.liveness, f"{key} {role}"


def test_redis_databases_are_unique_across_apps():
    dbs = [db for app in load_catalog().values() for db in (app.redis.cache_db, app.redis.celery_db)
           if db is not None]
    assert len(dbs) == len(set(dbs))


def test_latest_tag_is_rejected():
    data = raw_catalog()
    data["apps"]["openzaak"]["image"]["tag"] = "latest"
    with pytest.raises(ValueError, match="pin the image"):
        parse_catalog(data)


def test_unknown_dependency_is_rejected():
    data = raw_catalog()
    data["apps"]["objecten"]["depends_on"] = ["objecttypen", "openwonder"]
    with pytest.raises(ValueError, match="openwonder"):
        parse_catalog(data)


def test_shared_redis_database_is_rejected():
    data = raw_catalog()
    data["apps"]["openklant"]["redis"]["cache_db"] = data["apps"]["openzaak"]["redis"]["cache_db"]
    with pytest.raises(ValueError, match="already used"):
        parse_catalog(data)


def test_celery_roles_need_a_celery_db():
    data = raw_catalog()
    del data["apps"]["openzaak"]["redis"]["celery_db"]
    with pytest.raises(ValueError, match="celery_db"):
        parse_catalog(data)


def test_limits_below_requests_are_rejected():
    data = raw_catalog()
    data["apps"]["openzaak"]["roles"]["web"]["resources"]["limits"]["memory"] = "256Mi"
    with pytest.raises(ValueError, match="limits.memory"):
        parse_catalog(data)


def test_adding_an_app_is_adding_an_entry():
    data = raw_catalog()
    new = copy.deepcopy(data["apps"]["objecttypen"])
    new.update(title="Referentielijsten", image={"repository": "docker.io/maykinmedia/referentielijsten-api",
                                                  "tag": "0.7.4"},
               settings_module="referentielijsten.conf.docker", redis={"cache_db": 15})
    data["apps"]["referentielijsten"] = new
    apps = parse_catalog(data)
    assert isinstance(apps["referentielijsten"], AppSpec)
    assert apps["referentielijsten"].image.ref.endswith(":0.7.4")


def test_env_contract_is_catalog_data_shared_by_every_app():
    data = raw_catalog()
    apps = parse_catalog(data)
    for app in apps.values():
        assert app.env["DJANGO_SETTINGS_MODULE"] == "{settings_module}"
        assert set(data["env"]) <= set(app.env)


def test_an_app_entry_adds_and_overrides_env_templates():
    data = raw_catalog()
    data["apps"]["openzaak"]["env"] = {"NOTIFICATIONS_DISABLED": "False", "EMAIL_HOST": "smtp.{host}"}
    apps = parse_catalog(data)
    assert apps["openzaak"].env["NOTIFICATIONS_DISABLED"] == "False"
    assert apps["openzaak"].env["EMAIL_HOST"] == "smtp.{host}"
    assert apps["objecten"].env["EMAIL_HOST"] == "{email_host}"


def test_unknown_env_placeholder_is_rejected():
    data = raw_catalog()
    data["env"]["DB_HOST"] = "{database_host}"
    with pytest.raises(ValueError, match="database_host"):
        parse_catalog(data)


def test_unknown_top_level_key_is_rejected():
    data = raw_catalog()
    data["openwonder"] = {}
    with pytest.raises(ValueError, match="openwonder"):
        parse_catalog(data)


def test_a_dependency_must_serve_an_api():
    data = raw_catalog()
    data["apps"]["objecten"]["depends_on"] = ["openformulieren"]  # Open Formulieren serves no API
    with pytest.raises(ValueError, match="objecten: depends on openformulieren, which serves no api"):
        parse_catalog(data)


def test_the_api_step_must_be_one_the_app_registers():
    data = raw_catalog()
    data["apps"]["openzaak"]["setup_steps"].remove(data["apps"]["openzaak"]["api"]["step"])
    with pytest.raises(ValueError, match="api.step"):
        parse_catalog(data)


def test_every_app_has_its_jobs_and_every_provider_its_services():
    for app in load_catalog().values():
        assert app.jobs.migrate[:3] == ["python", "src/manage.py", "migrate"]
        assert "setup_configuration" in app.jobs.setup and "--yaml-file" in app.jobs.setup
        if app.api is not None:
            assert app.api.services and all(not p.startswith("/") and p.endswith("/")
                                            for p in app.api.services.values())
