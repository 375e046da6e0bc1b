"""Backups per tenant (components.backup): the CronJob, its credentials and scripts, the exact
NetworkPolicies, the municipality's override, and the restore Job built from the same template."""

from __future__ import annotations

import pytest

from cgkit import conventions as cv
from cgkit.config.loader import merge
from cgkit.config.model import EnvironmentFile, MunicipalityFile
from components.backup import NAME, SCRIPTS, export_job, restore_job

from rendered import ENVIRONMENT, all_apps, make_cfg, render

STORE = {"endpoint": "http://10.20.0.5:9000", "bucket": "cgkit-backups"}


def _backed_up(**municipality):
    return all_apps(environment={"backups": STORE}, **municipality)


@pytest.fixture(scope="module")
def backed_up():
    return render(_backed_up())


def _pod(cronjob):
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]


def test_no_backups_section_declares_no_backup(all_on):
    assert NAME not in all_on.names("CronJob") | all_on.names("Secret") | all_on.names("ConfigMap")
    assert "postgresql-backup-egress" not in all_on.names("NetworkPolicy")


def test_a_cronjob_dumps_every_app_database_on_the_schedule(backed_up):
    cronjob = backed_up.get("CronJob", NAME)
    assert cronjob["spec"]["schedule"] == "30 2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = _pod(cronjob)["spec"]
    dump, = pod["initContainers"]
    upload, = pod["containers"]
    env = {e["name"]: e.get("value") for e in dump["env"]}
    assert (env["PGHOST"], env["PGUSER"], env["CODE"]) == ("postgresql", "postgres", "GM0344")
    assert "DATABASES" not in env, "every database of the server, a disabled app's too"
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 6 * 3600
    assert dump["image"] == "docker.io/postgis/postgis:17-3.5", "pg_dump of the server's own major version"
    up = {e["name"]: e.get("value") for e in upload["env"]}
    assert (up["S3_ENDPOINT"], up["BUCKET"], up["PREFIX"], up["KEEP_DAILY"], up["KEEP_WEEKLY"]) == (
        "http://10.20.0.5:9000", "cgkit-backups", "test/gm0344/", "7", "4")
    assert upload["image"].startswith("docker.io/amazon/aws-cli:")


def test_credentials_come_from_the_stack_config_and_never_stand_in_the_pod(backed_up):
    secret = backed_up.get("Secret", NAME)
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secret["stringData"]["AWS_SECRET_ACCESS_KEY"] == "fake-backup-secret-access-key"
    upload = _pod(backed_up.get("CronJob", NAME))["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in upload["env"] if "valueFrom" in e}
    assert refs == {"AWS_ACCESS_KEY_ID": NAME, "AWS_SECRET_ACCESS_KEY": NAME}


def test_the_backup_pods_are_restricted(backed_up):
    pod = _pod(backed_up.get("CronJob", NAME))["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == NAME
    for container in pod["initContainers"] + pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"], container["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"], container["name"]


def test_the_backup_pods_reach_postgresql_and_exactly_the_store(backed_up):
    egress = backed_up.get("NetworkPolicy", "postgresql-backup-egress")["spec"]
    assert egress["podSelector"]["matchLabels"] == {cv.LABEL_NAME: "postgresql", cv.LABEL_COMPONENT: "backup"}
    peers = [(rule["to"], rule["ports"]) for rule in egress["egress"]]
    assert ([{"ipBlock": {"cidr": "10.20.0.5/32"}}], [{"protocol": "TCP", "port": 9000}]) in peers
    assert len(peers) == 2
    ingress = backed_up.get("NetworkPolicy", "postgresql-ingress")["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {cv.LABEL_NAME: "postgresql", cv.LABEL_COMPONENT: "backup"}}} in ingress


def test_a_store_in_the_cluster_is_named_by_its_namespace():
    m = render(make_cfg(environment={"backups": {**STORE, "endpoint": "http://s3.backup-store.svc:9000"}}))
    rule = m.get("NetworkPolicy", "postgresql-backup-egress")["spec"]["egress"][1]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "backup-store"}}}]


def test_a_municipality_overrides_schedule_and_retention_but_not_the_store():
    cfg = _backed_up(backups={"schedule": "@daily", "keep_weekly": 12})
    assert (cfg.backups.schedule, cfg.backups.keep_daily, cfg.backups.keep_weekly, cfg.backups.bucket) == (
        "@daily", 7, 12, "cgkit-backups")
    with pytest.raises(ValueError, match="endpoint"):
        MunicipalityFile.model_validate({"code": "GM0344", "domain": "a.nl", "backups": {"endpoint": "http://1.2.3.4:1"}})


def test_an_external_database_is_not_backed_up_by_cgkit():
    env = EnvironmentFile.model_validate({**ENVIRONMENT, "backups": STORE})
    muni = MunicipalityFile.model_validate({"code": "GM0344", "domain": "utrecht.test.cgkit.nl", "database": {
        "mode": "external", "host": "db.example.nl"}})
    cfg = merge("test", env, muni)
    assert cfg.backups is None
    assert NAME not in render(cfg).names("CronJob")


def test_a_restore_job_reuses_the_backup_pod_with_the_steps_swapped(backed_up):
    template = backed_up.get("CronJob", NAME)["spec"]["jobTemplate"]["spec"]["template"]
    job = restore_job(template, "postgresql-restore-x", "20261207T023000Z", suffix="_drill", drop_after=True,
                      databases=["openzaak"])
    pod = job["spec"]["template"]["spec"]
    fetch, = pod["initContainers"]
    restore, = pod["containers"]
    assert (fetch["name"], fetch["image"], restore["name"], restore["image"]) == (
        "fetch", template["spec"]["containers"][0]["image"], "restore", template["spec"]["initContainers"][0]["image"])
    env = {e["name"]: e.get("value") for e in restore["env"]}
    assert (env["BACKUP_ID"], env["SUFFIX"], env["DROP_AFTER"], env["DATABASES"]) == (
        "20261207T023000Z", "_drill", "1", "openzaak")
    assert job["spec"]["template"]["metadata"]["labels"][cv.LABEL_COMPONENT] == "backup"
    assert template["spec"]["containers"][0]["name"] == "upload", "the template itself is not changed"


def test_the_scripts_ship_in_the_configmap(backed_up):
    assert backed_up.get("ConfigMap", NAME)["data"] == SCRIPTS


def test_an_export_job_adds_the_media_read_only_and_keeps_its_folder_out_of_retention(backed_up):
    template = backed_up.get("CronJob", NAME)["spec"]["jobTemplate"]["spec"]["template"]
    job = export_job(template, "postgresql-export-x", ["openzaak-media", "objecten-media"])
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["dump", "media"]
    media = pod["initContainers"][1]
    mounts = {m["mountPath"]: m for m in media["volumeMounts"]}
    assert all(mounts[f"/media/{claim}"]["readOnly"] for claim in ("openzaak-media", "objecten-media"))
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
              for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"openzaak-media": True, "objecten-media": True}
    upload = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert upload["PREFIX"].endswith("/offboard/") and upload["RETAIN_ALL"] == "1"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["metadata"]["labels"][cv.LABEL_COMPONENT] == "backup", \
        "the backup pods' NetworkPolicies apply to it"
    assert media["securityContext"] == pod["initContainers"][0]["securityContext"]
    assert len(template["spec"]["initContainers"]) == 1, "the template itself is not changed"


def test_an_exports_work_volume_makes_room_for_the_media(backed_up):
    template = backed_up.get("CronJob", NAME)["spec"]["jobTemplate"]["spec"]["template"]
    work = lambda job: next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "work")  # noqa: E731
    base = work({"spec": {"template": template}})["emptyDir"]["sizeLimit"]
    grown = work(export_job(template, "x", ["openzaak-media"], extra_work_mib=20 * 1024))["emptyDir"]["sizeLimit"]
    assert (base, grown) == ("10Gi", "30Gi")
