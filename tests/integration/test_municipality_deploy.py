"""GM0344 with every catalog app, deployed by the real engine on the sandbox, read back from the API server.

Tests run in file order; the last ones preview changes to its file and put the file back. Its
destroy is asserted in test_zz_destroy.py, the session's last module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cgkit import engine
from cgkit.config import loader
from cgkit.conventions import LABEL_GEMEENTE, PSA_MODES, stack_name
from cgkit.errors import DataAtRiskError
from cgkit.secrets import secret_names
from tests.integration.conftest import CODE, ENV, cgkit

pytestmark = pytest.mark.integration
NS = CODE.lower()


def config(project: Path):
    return loader.load_municipality(project, ENV, CODE)


def test_every_deployment_is_available(deployed: Path, api: client.ApiClient) -> None:
    deployments = client.AppsV1Api(api).list_namespaced_deployment(NS).items
    apps = set(config(deployed).apps)
    assert {d.metadata.labels["app.kubernetes.io/name"] for d in deployments} >= apps
    for deployment in deployments:
        conditions = {c.type: c.status for c in deployment.status.conditions or []}
        assert conditions.get("Available") == "True", deployment.metadata.name
        assert deployment.status.ready_replicas == deployment.spec.replicas, deployment.metadata.name


def test_every_service_has_ready_endpoints(deployed: Path, api: client.ApiClient) -> None:
    discovery = client.DiscoveryV1Api(api)
    for service in client.CoreV1Api(api).list_namespaced_service(NS).items:
        slices = discovery.list_namespaced_endpoint_slice(
            NS, label_selector=f"kubernetes.io/service-name={service.metadata.name}").items
        ready = [e for s in slices for e in s.endpoints or [] if e.conditions.ready]
        assert ready, f"service {service.metadata.name} has no ready endpoints"


def test_ingress_hosts_are_the_configured_ones(deployed: Path, api: client.ApiClient) -> None:
    cfg = config(deployed)
    ingresses = client.NetworkingV1Api(api).list_namespaced_ingress(NS).items
    hosts = {rule.host for ing in ingresses for rule in ing.spec.rules}
    assert hosts == {cfg.host(app) for app in cfg.apps}
    for ing in ingresses:
        assert ing.spec.tls and ing.spec.tls[0].hosts == [ing.spec.rules[0].host]
        assert ing.status.load_balancer.ingress, f"{ing.metadata.name} has no load-balancer status"


def test_namespace_is_restricted_and_denies_by_default(deployed: Path, api: client.ApiClient) -> None:
    namespace = client.CoreV1Api(api).read_namespace(NS)
    labels = namespace.metadata.labels
    assert all(labels[f"pod-security.kubernetes.io/{mode}"] == "restricted" for mode in PSA_MODES)
    assert labels[LABEL_GEMEENTE] == CODE
    policies = client.NetworkingV1Api(api).list_namespaced_network_policy(NS).items
    deny_all = [p for p in policies if p.spec.pod_selector.match_labels is None
                and not p.spec.pod_selector.match_expressions and not p.spec.ingress and not p.spec.egress
                and set(p.spec.policy_types) == {"Ingress", "Egress"}]
    assert deny_all, "no default-deny NetworkPolicy for ingress and egress"
    assert len(policies) > 1, "only the default deny: apps have no allows"


def test_privileged_pod_is_refused_by_the_api_server(deployed: Path, api: client.ApiClient) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged-probe"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="c", image="docker.io/library/busybox:1.37",
            security_context=client.V1SecurityContext(privileged=True))]),
    )
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).create_namespaced_pod(NS, pod)
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body


def can(api: client.ApiClient, group: str, verb: str, resource: str, namespace: str) -> bool:
    """Ask the API server (SubjectAccessReview) whether a member of ``group`` may do ``verb`` on
    ``resource`` ("deployments.apps" style: resource.apiGroup) in ``namespace``."""
    name, _, api_group = resource.partition(".")
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user="someone@utrecht.nl", groups=[group],
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=name, group=api_group,
                                                        namespace=namespace)))
    return client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed


def test_tenant_admins_reach_their_own_namespace_only(deployed: Path, api: client.ApiClient) -> None:
    admins = config(deployed).access.admins[0]
    assert can(api, admins, "list", "deployments.apps", NS)
    assert not can(api, admins, "get", "secrets", "gm0363")
    assert not can(api, admins, "list", "secrets", "kube-system")
    assert not can(api, "utrecht-outsiders", "list", "deployments.apps", NS)


def test_second_up_changes_nothing(deployed: Path) -> None:
    settings, stack = _stack(deployed)
    result = engine.preview(stack, settings, engine.Operation(on_output=lambda _: None))
    assert set(result.changes) == {"same"}, result.changes


def test_state_holds_no_generated_secret_in_plaintext(deployed: Path) -> None:
    _, stack = _stack(deployed)
    values = {key: item.value for key, item in stack.get_all_config().items() if item.secret}
    assert len(values) == len(secret_names(config(deployed)))
    state = json.dumps(stack.export_stack().deployment)
    config_file = (deployed / f"Pulumi.{stack.name}.yaml").read_text()
    for key, value in values.items():
        assert value not in state, f"{key} in plaintext in the state"
        assert value not in config_file, f"{key} in plaintext in the stack config"


def test_changing_one_apps_replicas_previews_exactly_one_update(deployed: Path) -> None:
    path = loader.municipality_file(deployed, ENV, CODE)
    original = path.read_text()
    path.write_text(original.replace("opennotificaties: {replicas: 2}", "opennotificaties: {replicas: 3}"))
    try:
        settings, stack = _stack(deployed)
        result = engine.preview(stack, settings, engine.Operation(on_output=lambda _: None))
    finally:
        path.write_text(original)
    assert result.changes.get("update") == 1, result.changes
    assert set(result.changes) == {"same", "update"}, result.changes


def test_a_change_that_would_replace_the_database_stops_at_the_preview(deployed: Path) -> None:
    """A new volume size is a new claim template: the engine would replace the PostgreSQL StatefulSet.
    It is protected, so the preview fails naming it, and nothing changes."""
    path = loader.municipality_file(deployed, ENV, CODE)
    original = path.read_text()
    assert "storage: 10Gi" in original
    path.write_text(original.replace("storage: 10Gi", "storage: 12Gi"))
    try:
        settings, stack = _stack(deployed)
        with pytest.raises(DataAtRiskError) as stopped:
            engine.preview(stack, settings, engine.Operation(on_output=lambda _: None))
    finally:
        path.write_text(original)
    assert "replace kubernetes:apps/v1:StatefulSet gm0344-postgresql-statefulset" in str(stopped.value)
    assert f"--allow-data-loss {CODE}" in stopped.value.hint


def test_destroy_without_allow_data_loss_deletes_nothing(deployed: Path, api: client.ApiClient, capsys) -> None:
    before = engine.protected_resources(_stack(deployed)[1])
    assert {p.what for p in before} >= {f"Namespace {NS}", f"StatefulSet {NS}/postgresql"}
    assert cgkit("destroy", "--env", ENV, CODE, "--yes") != 0
    assert "holds records in Namespace gm0344, StatefulSet gm0344/postgresql" in capsys.readouterr().err
    assert client.CoreV1Api(api).read_namespace(NS).status.phase == "Active"
    assert engine.protected_resources(_stack(deployed)[1]) == before


def _stack(project: Path):
    settings = engine.EngineSettings(root=project)
    return settings, engine.select_stack(settings, stack_name(ENV, CODE))
