"""The municipality program: config -> components, exports, secrets, and the stack entry point."""

from __future__ import annotations

import runpy
from collections import Counter
from pathlib import Path

import pytest

from cgkit.render import run_municipality, run_program
from cgkit.secrets import secret_names
from components import releases

from rendered import ALL_APPS, all_apps, make_cfg, render

MAIN = Path(__file__).resolve().parents[3] / "stacks" / "__main__.py"


def test_all_apps_declares_the_full_tenant(all_on):
    assert Counter(m["kind"] for m in all_on) == {
        "Namespace": 1, "ResourceQuota": 1, "LimitRange": 1,
        "NetworkPolicy": 17,  # deny, dns, 2 per app, redis, postgresql, provisioning
        "Role": 2, "RoleBinding": 2,
        "ServiceAccount": 9,  # one per app, postgresql, redis, the patched default
        "Secret": 13,  # per app, its setup document, postgresql
        "ConfigMap": 7,  # per app + provisioning script
        "PersistentVolumeClaim": 5,  # media of all but objecttypen
        "Service": 8, "Ingress": 6, "PodDisruptionBudget": 6,
        "Deployment": 14,  # 6 web, 5 worker, 3 beat
        "StatefulSet": 2,
        "Job": 13,  # a migration and a setup Job per app, provisioning
    }


def test_minimal_config_gets_the_environment_defaults():
    cfg = make_cfg()  # code and domain only
    assert (cfg.size, sorted(cfg.apps), cfg.database.mode) == ("S", ["opennotificaties", "openzaak"], "in-cluster")
    run = run_municipality(cfg)
    m = [r.manifest for r in run.resources]
    deployments = {x["metadata"]["name"] for x in m if x["kind"] == "Deployment"}
    assert deployments == {"openzaak", "openzaak-worker", "openzaak-beat",
                           "opennotificaties", "opennotificaties-worker", "opennotificaties-beat"}
    assert run.exports["platform"] == {"ingressClass": "cgkit-test", "ingressNamespace": "ingress-system",
                                       "storageClass": "rwx-test"}
    assert {k: v for k, v in run.exports.items() if k != "platform"} == {"namespace": "gm0344", "urls": {
        "openzaak": "https://openzaak.utrecht.test.cgkit.nl",
        "opennotificaties": "https://opennotificaties.utrecht.test.cgkit.nl"},
        "wiring": ["opennotificaties -> openzaak", "openzaak -> opennotificaties"], "unwired": [],
        "release": releases.current().version}
    assert {x["metadata"]["name"] for x in m if x["kind"] == "StatefulSet"} == {"postgresql", "redis"}
    assert not any(x["kind"] == "PodDisruptionBudget" for x in m)  # S: one web replica


def test_every_resource_uses_the_one_explicit_provider():
    run = run_municipality(make_cfg())
    providers = {r.provider.split("::")[-2] for r in run.resources}
    assert providers == {"cluster"}


def test_external_database_replaces_the_in_tenant_server():
    m = render(all_apps(database={"mode": "external", "host": "db.internal.example.nl", "port": 5433,
                                  "sslmode": "verify-full"}))
    assert m.names("StatefulSet") == {"redis"}
    assert "postgresql" not in m.names("Service") | m.names("Secret") | m.names("ServiceAccount")
    assert not {n for n in m.names("Job") if n.startswith("postgresql")}
    for app in ALL_APPS:
        data = m.get("ConfigMap", app)["data"]
        assert (data["DB_HOST"], data["DB_PORT"], data["PGSSLMODE"]) == ("db.internal.example.nl", "5433", "verify-full")
    egress = m.get("NetworkPolicy", "openklant-egress")["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 5433}]} in egress


@pytest.mark.parametrize("app", ALL_APPS)
def test_a_disabled_app_is_gone_entirely(app):
    m = render(all_apps(apps={app: {"enabled": False}}))
    for kind in ("Deployment", "Service", "Ingress", "ConfigMap", "Secret", "ServiceAccount",
                 "PersistentVolumeClaim", "PodDisruptionBudget", "NetworkPolicy"):
        assert not {n for n in m.names(kind) if n == app or n.startswith(f"{app}-")}, (kind, app)
    script = m.get("ConfigMap", "postgresql-provision")["data"]["provision.sh"]
    assert f"--set=name={app} " not in script + " "


def test_secret_names_follow_the_enabled_apps_and_database_mode():
    assert secret_names(make_cfg()) == [
        "opennotificaties-db-password", "opennotificaties-secret-key", "opennotificaties-to-openzaak-secret",
        "openzaak-db-password", "openzaak-secret-key", "openzaak-to-opennotificaties-secret",
        "postgres-admin-password"]
    external = make_cfg(apps={"objecttypen": {}, "openzaak": {"enabled": False}, "opennotificaties": {"enabled": False}},
                        database={"mode": "external", "host": "10.0.0.5"})
    assert secret_names(external) == ["objecttypen-db-password", "objecttypen-secret-key"]


def test_missing_secret_fails_the_program():
    import stacks.municipality as program

    cfg = make_cfg()
    with pytest.raises(Exception, match="openzaak-secret-key|postgres-admin-password|db-password"):
        run_program(lambda: program.deploy(cfg), stack="test.gm0344")


# --- the entry point (stacks/__main__.py) --------------------------------------------------------


def _run_main(stack: str) -> None:
    run_program(lambda: runpy.run_path(str(MAIN), run_name="__main__"), stack=stack)


def test_entry_point_runs_the_municipality_program_for_a_code(monkeypatch):
    import stacks.municipality

    seen = []
    monkeypatch.setattr(stacks.municipality, "deploy", lambda cfg: seen.append((cfg.env, cfg.code)))
    _run_main("sandbox.gm0344")
    assert seen == [("sandbox", "GM0344")]


def test_entry_point_runs_the_platform_program(monkeypatch):
    import stacks.platform

    seen = []
    monkeypatch.setattr(stacks.platform, "deploy", lambda environment: seen.append(environment.name))
    _run_main("sandbox.platform")
    assert seen == ["sandbox"]


@pytest.mark.parametrize("stack", ["sandbox", "sandbox.utrecht", "sandbox.gm34", ".gm0344"])
def test_entry_point_rejects_other_stack_names(stack):
    with pytest.raises(SystemExit, match="platform"):
        _run_main(stack)


def test_entry_point_reports_invalid_config_by_file_and_line(tmp_path, monkeypatch):
    import stacks.municipality

    monkeypatch.setattr(stacks.municipality, "deploy", lambda cfg: pytest.fail("deployed a missing config"))
    with pytest.raises(SystemExit, match=r"environments/sandbox/municipalities/gm9999\.yaml"):
        _run_main("sandbox.gm9999")



def test_every_kubernetes_object_is_a_child_of_a_component():
    """The URN's type chain names the parents: every object sits under a cgkit component."""
    parents = Counter()
    for r in run_municipality(all_apps()).resources:
        assert r.urn, r.name
        chain = r.urn.split("::")[-2].split("$")
        assert len(chain) == 2 and chain[0].startswith("cgkit:"), r.urn
        parents[chain[0]] += 1
    assert set(parents) == {"cgkit:tenant:TenantBaseline", "cgkit:backing:Postgres", "cgkit:backing:Redis",
                            "cgkit:app:CommonGroundApp"}


def test_a_platform_deployed_from_other_names_fails_the_tenant():
    import pytest
    import pulumi_kubernetes

    from cgkit.render import _municipality_program, fake_secrets, run_program

    cfg = make_cfg()
    conf = fake_secrets(cfg)
    program = _municipality_program()
    wrong = {"ingressClass": "nginx", "ingressNamespace": "ingress-system", "storageClass": "rwx-test"}
    with pytest.raises(Exception, match="exports ingressClass='nginx' but environments/test/environment.yaml says 'cgkit-test'"):
        run_program(lambda: program.deploy(cfg, k8s_provider=pulumi_kubernetes.Provider("cluster")),
                    stack="test.gm0344", config=conf, secret_keys=list(conf), stack_outputs=wrong)


def test_renders_from_several_threads_at_once_all_finish():
    """Fleet workers render (capacity check) in parallel; the SDK's global state must not deadlock them."""
    import threading

    cfg = make_cfg()
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(len(run_municipality(cfg).resources)), daemon=True)
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(counts) == 3, "renders in parallel threads did not all finish within 60 s (deadlock)"
    assert len(set(counts)) == 1 and counts[0] > 0
