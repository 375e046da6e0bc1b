"""One suite per tenant: migrations once per release, and the wiring derived from the catalog."""

from __future__ import annotations

import copy
import json
import re

import pulumi_kubernetes as k8s
import pytest
import yaml

import stacks.municipality as program
from cgkit import engine
from cgkit.secrets import provided_secret_names, secret_names, tenant_edges
from components import wiring
from components.catalog import load_catalog
from rendered import ALL_APPS, Manifests, all_apps, covered, make_cfg, render, render_resources, run_municipality
from setup_schema import document_errors, errors, step_records

CATALOG = load_catalog()


def _documents(m: Manifests) -> dict[str, tuple[dict, dict[str, str]]]:
    """Per app with a setup Secret: (its parsed setup.yaml, the env values next to it)."""
    found = {}
    for secret in m.kind("Secret"):
        name = secret["metadata"]["name"]
        if name.endswith("-setup"):
            data = dict(secret["stringData"])
            found[name.removesuffix("-setup")] = (yaml.safe_load(data.pop("setup.yaml")), data)
    return found


# --- migrations once per release --------------------------------------------------------------


def test_each_app_migrates_once_in_an_awaited_job_before_its_deployments(all_on):
    for app in ALL_APPS:
        (job,) = [j for j in all_on.kind("Job") if j["metadata"]["name"].startswith(f"{app}-migrate-")]
        annotations = job["metadata"]["annotations"]
        assert "pulumi.com/skipAwait" not in annotations
        assert annotations["pulumi.com/replaceUnready"] == "true"  # a failed Job is retried by the next up
        pod = job["spec"]["template"]["spec"]
        assert pod["containers"][0]["command"] == list(CATALOG[app].jobs.migrate)
        assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False and pod["securityContext"]["runAsNonRoot"] is True
        assert {"configMapRef": {"name": app}} in pod["containers"][0]["envFrom"]


def test_deployments_wait_for_their_apps_migration_and_setup_jobs(monkeypatch):
    waits: dict[str, list[str]] = {}
    real = k8s.apps.v1.Deployment

    class Recording(real):  # records what each Deployment depends on, then declares it as usual
        def __init__(self, name, *args, opts=None, **kwargs):
            waits[name] = [getattr(dep, "_name", "") for dep in (opts.depends_on or [])]
            super().__init__(name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(k8s.apps.v1, "Deployment", Recording)
    render(make_cfg())
    for app in ("openzaak", "opennotificaties"):
        for role in ("web", "worker", "beat"):
            assert {f"gm0344-{app}-migrate", f"gm0344-{app}-setup"} <= set(waits[f"gm0344-{app}-{role}"]), role


def _with_image(monkeypatch, app: str, tag: str) -> None:
    catalog = copy.copy(CATALOG)
    spec = catalog[app]
    catalog[app] = spec.model_copy(update={"image": spec.image.model_copy(update={"tag": tag})})
    monkeypatch.setattr(program, "load_catalog", lambda: catalog)


def test_a_new_image_reruns_only_that_apps_migration_and_setup(monkeypatch):
    before = render(all_apps()).names("Job")
    _with_image(monkeypatch, "objecten", "3.6.2")
    after = render(all_apps()).names("Job")
    changed = sorted(before ^ after)
    assert len(changed) == 4 and all(name.startswith(("objecten-migrate-", "objecten-setup-")) for name in changed)


def test_an_unchanged_tenant_keeps_its_job_names():
    assert render(all_apps()).names("Job") == render(all_apps()).names("Job")


# --- wiring -----------------------------------------------------------------------------------


def test_edges_are_the_catalogs_dependencies_among_enabled_apps():
    expected = {(a, dep) for a in ALL_APPS for dep in CATALOG[a].depends_on}
    assert {(e.consumer, e.provider) for e in tenant_edges(all_apps())} == expected
    assert {("openzaak", "opennotificaties"), ("opennotificaties", "openzaak"), ("objecten", "objecttypen"),
            ("openformulieren", "openzaak"), ("openformulieren", "objecten")} <= expected


def test_credentials_are_one_per_edge_and_per_tenant():
    utrecht, enschede = all_apps(), all_apps(code="GM0153", domain="enschede.test.cgkit.nl")
    ids = [e.client_id(cfg.code) for cfg in (utrecht, enschede) for e in tenant_edges(cfg)]
    assert len(ids) == len(set(ids)) == 2 * len(tenant_edges(utrecht))
    assert all(len(i) <= wiring.CLIENT_ID_MAX for i in ids)
    edge_secrets = [n for n in secret_names(utrecht) if n.endswith("-secret") and "-to-" in n]
    assert sorted(edge_secrets) == sorted(e.secret_name for e in tenant_edges(utrecht))


class _FakeStack:
    """The calls engine.ensure_secrets and engine.missing_config make on a Pulumi stack."""

    def __init__(self) -> None:
        self.config: dict[str, str] = {}
        self.name = "fake"

    def get_all_config(self) -> dict[str, str]:
        return dict(self.config)

    def set_config(self, key, value) -> None:
        self.config[key] = value.value

    def set_all_config(self, values) -> None:
        self.config.update({key: value.value for key, value in values.items()})


def test_edge_secrets_are_generated_once_and_differ_between_edges_and_tenants():
    stacks = {code: _FakeStack() for code in ("GM0344", "GM0153")}
    for code, stack in stacks.items():
        names = secret_names(all_apps(code=code, domain=f"{code.lower()}.test.cgkit.nl"))
        assert engine.ensure_secrets(stack, names) == names
    first = {code: dict(s.config) for code, s in stacks.items()}
    assert engine.ensure_secrets(stacks["GM0344"], secret_names(all_apps())) == []  # stable across runs
    assert stacks["GM0344"].config == first["GM0344"]
    edge_values = [v for config in first.values() for k, v in config.items() if "-to-" in k]
    assert len(edge_values) == len(set(edge_values)) == 2 * len(tenant_edges(all_apps()))


def _secret_leaves(r) -> set[str]:
    """The string values under the resource's secret paths (a path may cover a whole mapping)."""
    def leaves(node):
        if isinstance(node, dict):
            return {s for v in node.values() for s in leaves(v)}
        return {node} if isinstance(node, str) else set()
    found = set()
    for path in r.secret_paths:
        node = r.manifest
        for part in path.split("."):
            node = node[part]
        found |= leaves(node)
    return found


def test_no_secret_value_outside_a_secret():
    resources = render_resources(all_apps())
    values = {v for r in resources if r.manifest["kind"] == "Secret" for v in _secret_leaves(r)}
    assert {"fake-objecten-to-objecttypen-secret", "Token fake-objecten-to-objecttypen-secret"} <= values
    for r in resources:
        if r.manifest["kind"] == "Secret":
            continue
        text = json.dumps(r.manifest)
        assert not [v for v in values if v in text], (r.manifest["kind"], r.manifest["metadata"]["name"])


def test_setup_secrets_are_secret_outputs_and_reach_the_job_by_reference(all_on):
    resources = {r.manifest["metadata"]["name"]: r for r in render_resources(all_apps())
                 if r.manifest["kind"] == "Secret"}
    for app, (_, env) in _documents(all_on).items():
        secret = resources[f"{app}-setup"]
        assert env and covered(secret.secret_paths, {f"stringData.{k}" for k in env}), app
        (job,) = [j for j in all_on.kind("Job") if j["metadata"]["name"].startswith(f"{app}-setup-")]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == list(CATALOG[app].jobs.setup)
        secrets = [e for e in container["env"] if e["name"] != "OTEL_RESOURCE_ATTRIBUTES"]  # plain, not secret
        assert all("valueFrom" in e and "value" not in e for e in secrets)
        assert {e["name"] for e in secrets} == set(env)


def test_both_sides_of_an_edge_get_matching_credentials(all_on):
    docs = _documents(all_on)
    # Open Zaak -> Open Notificaties (zgw): same client id and secret on both sides.
    oz, oz_env = docs["openzaak"]
    nrc = next(s for s in oz["zgw_consumers"]["services"] if s["api_type"] == "nrc")
    assert nrc["api_root"] == "http://opennotificaties.gm0344.svc.cluster.local/api/v1/"
    on, on_env = docs["opennotificaties"]
    (cred,) = [c for c in on["vng_api_common_credentials"]["items"] if c["identifier"] == nrc["client_id"]]
    assert on_env[cred["secret"]["value_from"]["env"]] == oz_env[nrc["secret"]["value_from"]["env"]]
    assert oz["notifications_config"] == {"notifications_api_service_identifier": "opennotificaties-nrc"}
    # the client's autorisaties live in Open Zaak's Autorisaties API, which Open Notificaties consults
    assert nrc["client_id"] in [c for a in oz["vng_api_common_applicaties"]["items"] for c in a["client_ids"]]
    assert on["autorisaties_api"] == {"authorizations_api_service_identifier": "openzaak-ac"}
    # Objecten -> Objecttypen (token): the header the consumer sends carries the provider's token.
    ob, ob_env = docs["objecten"]
    ot_service = next(s for s in ob["zgw_consumers"]["services"] if s["identifier"] == "objecttypen-orc")
    ot, ot_env = docs["objecttypen"]
    (token,) = [t for t in ot["tokenauth"]["items"] if t["identifier"] == "cgkit-gm0344-objecten-objecttypen"]
    header = ob_env[ot_service["header_value"]["value_from"]["env"]]
    assert header == f"Token {ot_env[token['token']['value_from']['env']]}"


def test_publishers_get_their_kanalen_in_open_notificaties(all_on):
    on, _ = _documents(all_on)["opennotificaties"]
    kanalen = {k["naam"] for k in on["notifications_kanalen_config"]["items"]}
    assert kanalen == {k for a in ("openzaak", "objecten", "openklant") for k in CATALOG[a].kanalen}
    assert {"zaken", "documenten", "besluiten", "objecten"} <= kanalen


def test_disabling_an_app_removes_its_edges_on_both_sides():
    m = render(all_apps(apps={"objecttypen": {"enabled": False}}))
    docs = _documents(m)
    assert "objecttypen" not in docs
    text = json.dumps({app: (doc, sorted(env)) for app, (doc, env) in docs.items()})
    assert "objecten" in docs and "informatieobjecttypen" in text  # a kanaal of Open Zaak, not the app
    assert not re.search(r"(?<![a-z])objecttypen", text, re.IGNORECASE)
    assert not [n for n in secret_names(all_apps(apps={"objecttypen": {"enabled": False}})) if "objecttypen" in n]
    assert wiring.dropped_edges([CATALOG[a] for a in ALL_APPS if a != "objecttypen"], CATALOG) == [
        wiring.Edge("objecten", "objecttypen"), wiring.Edge("openformulieren", "objecttypen")]


def test_an_app_alone_has_nothing_to_wire():
    m = render(make_cfg(apps={"objecttypen": {}, "openzaak": {"enabled": False},
                              "opennotificaties": {"enabled": False}}))
    assert _documents(m) == {}
    assert sorted(n.rsplit("-", 1)[0] for n in m.names("Job")) == ["objecttypen-migrate", "postgresql-provision"]


# --- the documents against the step models ----------------------------------------------------


@pytest.mark.parametrize("app", ALL_APPS)
def test_every_setup_document_validates_against_its_step_models(all_on, app):
    document, env = _documents(all_on)[app]
    assert document_errors(document, app, CATALOG[app].setup_steps, env) == []


@pytest.mark.parametrize("app", ALL_APPS)
def test_every_step_record_names_its_source(app):
    records = step_records(app)
    assert set(CATALOG[app].setup_steps) & set(records)
    for path, record in records.items():
        source = record["source"]
        assert ("package" in source and "version" in source and "module" in source) or \
               ("repository" in source and "ref" in source and source["paths"]), path
        assert record["schema"]["type"] == "object" and record["namespace"] and record["enable_setting"]


def test_the_checker_rejects_what_the_step_models_reject():
    record = step_records("objecttypen")["objecttypes.setup_configuration.steps.token_auth.TokenAuthConfigurationStep"]
    schema = record["schema"]
    good = {"items": [{"identifier": "cgkit-x", "token": "t" * 40, "contact_person": "p", "email": "a@b.nl"}]}
    assert errors(good, schema, schema) == []
    too_long = copy.deepcopy(good)
    too_long["items"][0]["token"] = "t" * 43  # a raw 32-byte secret: TokenAuth.token is max 40
    assert errors(too_long, schema, schema)
    unknown = copy.deepcopy(good)
    unknown["items"][0]["permissions"] = []  # objects-api has permissions, objecttypes-api does not
    assert errors(unknown, schema, schema)
    missing = {"items": [{"identifier": "not a slug", "token": "t"}]}
    assert len(errors(missing, schema, schema)) == 3  # pattern, contact_person, email
    services = step_records("openzaak")[wiring.SERVICES]["schema"]
    assert errors({"services": [{"identifier": "x", "label": "x", "api_type": "objects", "api_root": "/"}]},
                  services, services)  # api_type is an enum
    assert errors({"services": [{"identifier": "two words", "label": "x", "api_type": "nrc", "api_root": "/"}]},
                  services, services)  # zgw-consumers 2.0.3: the identifier is a slug
    assert document_errors({"zgw_consumers": {"services": []}}, "openzaak", CATALOG["openzaak"].setup_steps, {}) == [
        "zgw_consumers_config_enable: zgw_consumers.contrib.setup_configuration.steps.ServiceConfigurationStep "
        "is configured but not enabled"]


def test_wiring_table_in_the_readmes_is_generated_from_the_catalog(project_root):
    table = wiring.wiring_table(CATALOG)
    for readme in ("README.md", "components/README.md"):
        assert table in (project_root / readme).read_text(encoding="utf-8"), \
            f"{readme}: paste the table that `cgkit wiring` prints"


def test_up_prints_which_app_talks_to_which(capsys):
    from cgkit.cli.stack_cmds import _print_output

    run = run_municipality(all_apps(apps={"objecttypen": {"enabled": False}}))
    for name in ("wiring", "unwired"):
        _print_output(name, run.exports[name])
    printed = capsys.readouterr().out
    assert "  wiring:\n    objecten -> opennotificaties\n" in printed
    assert "openzaak -> opennotificaties" in printed and "objecten -> objecttypen" not in printed.split("unwired")[0]
    assert "  unwired:\n    objecten -> objecttypen (objecttypen is not enabled)\n" in printed


# --- optional OIDC login per municipality -----------------------------------------------------

OIDC = {"oidc": {"issuer": "https://login.utrecht.example/realms/gemeente", "client_id": "utrecht-cg"}}


def test_oidc_login_goes_to_every_app_with_the_oidc_step_and_validates():
    cfg = all_apps(auth=OIDC)
    assert secret_names(cfg) == secret_names(all_apps())  # the client secret is never generated
    docs = _documents(render(cfg))
    with_step = {a for a in ALL_APPS if wiring.OIDC in CATALOG[a].setup_steps}
    assert with_step == set(ALL_APPS)  # all six register mozilla-django-oidc-db's admin step
    for app in with_step:
        document, env = docs[app]
        oidc = document["oidc_db_config_admin_auth"]
        assert oidc["providers"][0]["endpoint_config"] == {
            "oidc_op_discovery_endpoint": "https://login.utrecht.example/realms/gemeente/.well-known/openid-configuration"}
        (item,) = oidc["items"]
        assert item["oidc_rp_client_id"] == "utrecht-cg"
        assert env[item["oidc_rp_client_secret"]["value_from"]["env"]] == "fake-oidc-client-secret"
        assert document_errors(document, app, CATALOG[app].setup_steps, env) == [], app
    assert "oidc_db_config_admin_auth" not in json.dumps({a: d for a, (d, _) in _documents(render(all_apps())).items()})


@pytest.mark.parametrize("issuer", ["http://login.example/realms/x", "login.example", "https://"])
def test_oidc_issuer_must_be_an_https_url(issuer):
    with pytest.raises(ValueError, match="issuer"):
        all_apps(auth={"oidc": {"issuer": issuer, "client_id": "x"}})


def test_a_stack_without_the_oidc_client_secret_is_refused_before_the_engine_runs():
    stack = _FakeStack()
    cfg = all_apps(auth=OIDC)
    assert engine.missing_config(stack, provided_secret_names(cfg)) == ["oidc-client-secret"]
    stack.config["cgkit:oidc-client-secret"] = "set-by-the-platform-team"
    assert engine.missing_config(stack, provided_secret_names(cfg)) == []
    assert provided_secret_names(all_apps()) == []


def test_cli_refuses_a_stack_without_the_oidc_client_secret(scratch_root, monkeypatch, capsys):
    from cgkit import stackops
    from cgkit.cli.app import main
    from cgkit.cli.exit_codes import ExitStatus

    (scratch_root / "environments/sandbox/municipalities/gm0344.yaml").write_text(
        "code: GM0344\ndomain: utrecht.sandbox.cgkit.test\n"
        "auth:\n  oidc: {issuer: 'https://login.utrecht.example/realms/gemeente', client_id: utrecht-cg}\n")
    monkeypatch.chdir(scratch_root)
    monkeypatch.delenv("CGKIT_PROJECT_DIR", raising=False)
    stack = _FakeStack()
    monkeypatch.setattr(stackops, "check_environment", lambda environment, root: None)  # no cluster
    monkeypatch.setattr(engine, "existing_stack", lambda settings, name: None)
    monkeypatch.setattr(engine, "select_stack", lambda settings, name: stack)
    monkeypatch.setattr(engine, "preview", lambda *a, **k: pytest.fail("the engine ran without the secret"))
    assert main(["preview", "--env", "sandbox", "GM0344"]) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert "oidc-client-secret" in err and "pulumi config set --secret cgkit:oidc-client-secret" in err
    assert stack.config == {}  # refused before generating anything
    stack.config["cgkit:oidc-client-secret"] = "set-by-the-platform-team"
    monkeypatch.setattr(engine, "preview", lambda *a, **k: engine.Outcome({"create": 1}))
    assert main(["preview", "--env", "sandbox", "GM0344"]) == ExitStatus.OK
    assert "cgkit:openzaak-to-opennotificaties-secret" in stack.config  # the generated ones followed
