"""CommonGroundApp and the backing services: workloads, security context, settings, exposure."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from cgkit import conventions as cv
from cgkit.render import run_program
from components.app import CommonGroundApp, CommonGroundAppArgs, AppDatabase
from components.backing import Database, provision_script
from components.catalog import load_catalog
from components.sizing import tier

from rendered import ALL_APPS, all_apps, covered, make_cfg, render, render_resources


def _pod_specs(manifests):
    for w in manifests.workloads():
        yield w, w["spec"]["template"]["spec"]


def test_every_workload_is_restricted_and_has_requests_and_limits(all_on):
    # 14 app Deployments + PostgreSQL, Redis, provisioning Job + a migration and a setup Job per app
    assert len(all_on.workloads()) == 29
    for w, pod in _pod_specs(all_on):
        where = f"{w['kind']} {w['metadata']['name']}"
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0 and psc["runAsGroup"] > 0, where
        assert psc["fsGroup"] == psc["runAsGroup"], where
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["enableServiceLinks"] is False, where
        assert pod["serviceAccountName"] != "default", where
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), where
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["runAsNonRoot"] is True and sc["privileged"] is False, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            for section in ("requests", "limits"):
                assert set(c["resources"][section]) == {"cpu", "memory"}, where
            assert ":" in c["image"] and not c["image"].endswith(":latest"), where
        for vol in pod.get("volumes", []):
            assert set(vol) - {"name"} <= {"persistentVolumeClaim", "emptyDir", "configMap", "secret"}, where


def test_every_object_carries_the_cgkit_labels(all_on):
    for m in all_on:
        if m["metadata"]["name"] == "default":
            continue  # the default ServiceAccount is patched, not owned
        labels = m["metadata"]["labels"]
        assert labels[cv.LABEL_MANAGED_BY] == "cgkit" and labels[cv.LABEL_GEMEENTE] == "GM0344", m["metadata"]["name"]


def test_web_probes_send_a_host_header_that_allowed_hosts_accepts(all_on):
    for app in ALL_APPS:
        spec = load_catalog()[app]
        web = all_on.get("Deployment", app)["spec"]["template"]["spec"]["containers"][0]
        allowed = all_on.get("ConfigMap", app)["data"]["ALLOWED_HOSTS"].split(",")
        paths = {}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = web[probe]["httpGet"]
            assert get["port"] == "http"
            (header,) = get["httpHeaders"]
            assert header["name"] == "Host" and header["value"] in allowed, (app, probe)
            paths[probe] = get["path"]
        assert paths["livenessProbe"] == spec.probes.liveness
        assert paths["readinessProbe"] == spec.probes.readiness
        assert web["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_open_zaak_settings(all_on):
    data = all_on.get("ConfigMap", "openzaak")["data"]
    assert data["DJANGO_SETTINGS_MODULE"] == "openzaak.conf.docker"
    assert data["ALLOWED_HOSTS"].split(",") == [
        "openzaak", "openzaak.gm0344", "openzaak.gm0344.svc", "openzaak.gm0344.svc.cluster.local",
        "openzaak.utrecht.test.cgkit.nl", "localhost"]
    assert (data["DB_HOST"], data["DB_PORT"], data["DB_NAME"], data["DB_USER"]) == ("postgresql", "5432", "openzaak", "openzaak")
    assert data["CACHE_DEFAULT"] == data["CACHE_AXES"] == "redis:6379/4"
    assert data["CELERY_BROKER_URL"] == data["CELERY_RESULT_BACKEND"] == "redis://redis:6379/5"
    assert data["IS_HTTPS"] == "True" and data["SITE_DOMAIN"] == "openzaak.utrecht.test.cgkit.nl"
    assert data["EMAIL_HOST"]
    assert "PGSSLMODE" not in data
    assert not {"SECRET_KEY", "DB_PASSWORD"} & set(data)


def test_objecttypen_has_no_celery(all_on):
    data = all_on.get("ConfigMap", "objecttypen")["data"]
    assert "CELERY_BROKER_URL" not in data
    assert not {"objecttypen-worker", "objecttypen-beat"} & all_on.names("Deployment")


def test_secrets_are_secret_outputs_and_reach_pods_by_reference():
    resources = render_resources(make_cfg())
    secret = next(r for r in resources if r.manifest["kind"] == "Secret" and r.manifest["metadata"]["name"] == "openzaak")
    assert covered(secret.secret_paths, {"stringData.SECRET_KEY", "stringData.DB_PASSWORD"})
    assert secret.manifest["stringData"]["SECRET_KEY"] == "fake-openzaak-secret-key"
    pg = next(r for r in resources if r.manifest["kind"] == "Secret" and r.manifest["metadata"]["name"] == "postgresql")
    assert covered(pg.secret_paths, {"stringData.POSTGRES_PASSWORD", "stringData.OPENZAAK_DB_PASSWORD",
                                      "stringData.OPENNOTIFICATIES_DB_PASSWORD"})
    web = next(r for r in resources if r.manifest["kind"] == "Deployment" and r.manifest["metadata"]["name"] == "openzaak")
    assert web.secret_paths == ()
    assert {"secretRef": {"name": "openzaak"}} in web.manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"]


def test_celery_roles(all_on):
    worker = all_on.get("Deployment", "openzaak-worker")["spec"]
    c = worker["template"]["spec"]["containers"][0]
    assert c["command"] == ["/celery_worker.sh"]
    assert c["livenessProbe"]["exec"]["command"] == ["/celery_worker_liveness_probe.sh"]
    assert "worker-health-check" in c["readinessProbe"]["exec"]["command"][-1]
    assert {"name": "CELERY_WORKER_CONCURRENCY", "value": "4"} in c["env"]
    beat = all_on.get("Deployment", "openzaak-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}
    assert beat["template"]["spec"]["containers"][0]["command"] == ["/celery_beat.sh"]
    assert worker["selector"]["matchLabels"] == {cv.LABEL_NAME: "openzaak", cv.LABEL_COMPONENT: "worker"}


def test_service_and_ingress(all_on):
    svc = all_on.get("Service", "openzaak")["spec"]
    assert svc["type"] == "ClusterIP"
    assert svc["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["selector"] == {cv.LABEL_NAME: "openzaak", cv.LABEL_COMPONENT: "web"}
    ing = all_on.get("Ingress", "openzaak")
    # awaited like everything else: no skipAwait annotation
    assert ing["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "test-ca"}
    spec = ing["spec"]
    assert spec["ingressClassName"] == "cgkit-test"
    assert spec["tls"] == [{"hosts": ["openzaak.utrecht.test.cgkit.nl"], "secretName": "openzaak-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "openzaak.utrecht.test.cgkit.nl"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "openzaak", "port": {"number": 80}}}


def test_no_issuer_means_no_issuer_annotation():
    env = {"ingress": {"class_name": "c", "controller": "k8s.io/ingress-nginx", "controller_namespace": "i"}}
    ing = render(make_cfg(environment=env)).get("Ingress", "openzaak")
    assert not ing["metadata"].get("annotations")
    assert ing["spec"]["tls"][0]["secretName"] == "openzaak-tls"


def test_pdb_only_when_web_has_two_or_more_replicas():
    m = render(make_cfg(size="S", apps={"openzaak": {"replicas": 2}, "opennotificaties": {}}))
    assert m.get("Deployment", "openzaak")["spec"]["replicas"] == 2
    assert m.get("Deployment", "opennotificaties")["spec"]["replicas"] == 1
    assert m.names("PodDisruptionBudget") == {"openzaak"}
    pdb = m.get("PodDisruptionBudget", "openzaak")["spec"]
    assert pdb == {"minAvailable": 1, "selector": {"matchLabels": {cv.LABEL_NAME: "openzaak", cv.LABEL_COMPONENT: "web"}}}


def test_media_volume_is_rwx_with_the_environment_storage_class(all_on):
    pvc = all_on.get("PersistentVolumeClaim", "openzaak-media")["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"] and pvc["storageClassName"] == "rwx-test"
    assert pvc["resources"]["requests"]["storage"] == "10Gi"  # 1Gi catalog x M storage factor 10
    mounts = all_on.get("Deployment", "openzaak-worker")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {(m["mountPath"], m["subPath"]) for m in mounts} == {("/app/media", "media"), ("/app/private-media", "private-media")}
    assert "objecttypen-media" not in all_on.names("PersistentVolumeClaim")


def test_postgres_statefulset_and_provisioning(all_on):
    sts = all_on.get("StatefulSet", "postgresql")["spec"]
    assert sts["serviceName"] == "postgresql" and sts["replicas"] == 1
    c = sts["template"]["spec"]["containers"][0]
    assert c["image"] == "docker.io/postgis/postgis:17-3.5"
    assert {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgresql", "key": "POSTGRES_PASSWORD"}}} in c["env"]
    assert sts["template"]["spec"]["securityContext"]["runAsUser"] == 999
    assert sts["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "rwx-test"
    assert all_on.get("Service", "postgresql")["spec"]["clusterIP"] == "None"
    (job,) = [j for j in all_on.kind("Job") if j["metadata"]["labels"]["app.kubernetes.io/name"] == "postgresql"]
    assert job["metadata"]["name"].startswith("postgresql-provision-")
    script = all_on.get("ConfigMap", "postgresql-provision")["data"]["provision.sh"]
    for app in ALL_APPS:
        assert f"--set=name={app}" in script
    assert "fake-" not in script  # passwords come from the environment, never the script
    job_env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {f"{a.upper()}_DB_PASSWORD" for a in ALL_APPS} <= job_env


def test_provision_script_adds_postgis_only_where_needed():
    script = provision_script([Database("openzaak", "x", postgis=True), Database("openklant", "y")])
    assert "--dbname=openzaak -c 'CREATE EXTENSION IF NOT EXISTS postgis;'" in script
    assert "--dbname=openklant" not in script
    assert "\\getenv password OPENKLANT_DB_PASSWORD" in script


def test_enabling_an_app_renames_the_provisioning_job():
    one = render(make_cfg(apps={"openzaak": {}}))
    two = render(make_cfg(apps={"openzaak": {}, "openklant": {}}))
    assert one.names("Job") != two.names("Job")


def test_redis(all_on):
    sts = all_on.get("StatefulSet", "redis")["spec"]
    c = sts["template"]["spec"]["containers"][0]
    assert c["image"] == "docker.io/redis:8.0"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert all_on.get("Service", "redis")["spec"]["ports"][0]["port"] == 6379


def test_component_refuses_to_run_without_an_explicit_provider():
    spec = load_catalog()["objecttypen"]
    args = CommonGroundAppArgs(spec=spec, code="GM0344", namespace="gm0344", namespace_name="gm0344",
                               domain="x.nl", tier=tier("S"), database=AppDatabase("postgresql"),
                               secret_key="k", db_password="p")
    with pytest.raises(ValueError, match="no Kubernetes provider"):
        run_program(lambda: CommonGroundApp("objecttypen", args))


def test_component_outputs_and_children():
    spec = load_catalog()["objecttypen"]
    seen = {}

    def program():
        app = CommonGroundApp("objecttypen", CommonGroundAppArgs(
            spec=spec, code="GM0344", namespace="gm0344", namespace_name="gm0344", domain="x.nl",
            tier=tier("S"), database=AppDatabase("postgresql"), secret_key="k", db_password="p"),
            opts=pulumi.ResourceOptions(provider=k8s.Provider("test")))
        pulumi.export("url", app.url)
        pulumi.export("service", app.service_name)
        seen["children"] = sorted(r._name for r in app._childResources)

    run = run_program(program)
    assert run.exports == {"url": "https://objecttypen.x.nl", "service": "objecttypen"}
    assert seen["children"] == ["objecttypen-config", "objecttypen-ingress", "objecttypen-migrate",
                                "objecttypen-sa", "objecttypen-secret", "objecttypen-service", "objecttypen-web"]
    assert all(r.provider and "::test::" in r.provider for r in run.resources)


def test_exactly_the_resources_that_hold_records_are_protected():
    """The namespace (its deletion takes every claim along), the PostgreSQL StatefulSet (its claim
    template holds the databases) and each media claim carry Pulumi's protect; nothing else does, so
    every other change (a Deployment replaced, a Job renamed) still runs without a flag."""
    resources = render_resources(all_apps())
    protected = {(r.manifest["kind"], r.manifest["metadata"]["name"]) for r in resources if r.protected}
    media = {("PersistentVolumeClaim", r.manifest["metadata"]["name"]) for r in resources
             if r.manifest["kind"] == "PersistentVolumeClaim"}
    assert media, "the full suite has media volumes"
    assert protected == {("Namespace", "gm0344"), ("StatefulSet", "postgresql")} | media


def test_an_external_database_leaves_no_database_to_protect():
    resources = render_resources(all_apps(database={"mode": "external", "host": "db.example.nl"}))
    assert ("StatefulSet", "postgresql") not in {(r.manifest["kind"], r.manifest["metadata"]["name"])
                                                 for r in resources if r.protected}


def test_the_environments_awaits_bound_every_job_and_rollout() -> None:
    """The engine awaits each Job and workload as long as the environment's ``awaits:`` says (the
    provider's pulumi.com/timeoutSeconds), so a lost node fails an up in minutes in the sandbox."""
    default = render(make_cfg())
    short = render(make_cfg(environment={"awaits": {"job_s": 120, "rollout_s": 240}}))
    for manifests, job_s, rollout_s in ((default, "1800", "600"), (short, "120", "240")):
        workloads = manifests.workloads()
        assert {w["kind"] for w in workloads} == {"Deployment", "StatefulSet", "Job"}
        for workload in workloads:
            bound = workload["metadata"].get("annotations", {}).get("pulumi.com/timeoutSeconds")
            assert bound == (job_s if workload["kind"] == "Job" else rollout_s), workload["metadata"]["name"]
