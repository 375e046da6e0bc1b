"""Observability per tenant: the apps' OTEL_* settings, the municipality code on every pod, and
egress to exactly the environment's collector (cgkit.otlp)."""

from __future__ import annotations

import pytest

from cgkit import conventions as cv

from rendered import ALL_APPS, all_apps, make_cfg, render

COLLECTOR = "http://otel-collector.observability.svc:4318"


def _with_collector(**municipality):
    return all_apps(environment={"observability": {"otlp_endpoint": COLLECTOR}}, **municipality)


@pytest.fixture(scope="module")
def traced():
    return render(_with_collector())


def _app_containers(manifests):
    """(workload, role label, container) for every container that runs an app's image."""
    for w in manifests.workloads():
        labels = w["spec"]["template"]["metadata"]["labels"]
        if labels[cv.LABEL_NAME] in ALL_APPS:
            for c in w["spec"]["template"]["spec"]["containers"]:
                yield w, labels, c


def _env(container) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _egress_rules(manifests):
    return [(pol["metadata"]["name"], rule) for pol in manifests.kind("NetworkPolicy")
            for rule in pol["spec"].get("egress", [])]


def test_telemetry_is_off_by_default_and_opens_nothing(all_on):
    for app in ALL_APPS:
        otel = {k: v for k, v in all_on.get("ConfigMap", app)["data"].items() if k.startswith("OTEL_")}
        assert otel == {"OTEL_SDK_DISABLED": "true"}, app
    assert "otlp-egress" not in all_on.names("NetworkPolicy")
    assert not [name for name, rule in _egress_rules(all_on)
                if any(p.get("port") in (4317, 4318) for p in rule["ports"])]


def test_every_app_container_names_its_app_role_tenant_code_and_environment(all_on):
    seen = set()
    for w, labels, c in _app_containers(all_on):
        role = labels[cv.LABEL_COMPONENT]
        assert _env(c)["OTEL_RESOURCE_ATTRIBUTES"] == (
            f"service.name={labels[cv.LABEL_NAME]}-{role},service.namespace=gm0344,"
            "cgkit.gemeente.code=GM0344,deployment.environment.name=test"), w["metadata"]["name"]
        seen.add(role)
    assert seen == {"web", "worker", "beat", "migrate", "setup"}


def test_every_pod_template_carries_the_municipality_code(traced):
    for w in traced.workloads():
        assert w["spec"]["template"]["metadata"]["labels"][cv.LABEL_GEMEENTE] == "GM0344", w["metadata"]["name"]
        assert w["metadata"]["labels"][cv.LABEL_GEMEENTE] == "GM0344", w["metadata"]["name"]


def test_a_collector_turns_the_sdk_on_for_every_app(traced):
    for app in ALL_APPS:
        otel = {k: v for k, v in traced.get("ConfigMap", app)["data"].items() if k.startswith("OTEL_")}
        assert otel == {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR,
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, app
    for w, _, c in _app_containers(traced):
        assert {"configMapRef": {"name": w["spec"]["template"]["metadata"]["labels"][cv.LABEL_NAME]}} in c["envFrom"]
        assert "OTEL_RESOURCE_ATTRIBUTES" in _env(c), w["metadata"]["name"]


def test_a_collector_service_gets_exactly_one_egress_rule_to_its_namespace_and_port(traced):
    untraced = render(all_apps())
    assert traced.names("NetworkPolicy") - untraced.names("NetworkPolicy") == {"otlp-egress"}
    added = [r for r in _egress_rules(traced) if r not in _egress_rules(untraced)]
    assert added == [("otlp-egress", {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "ports": [{"protocol": "TCP", "port": 4318}]})]
    selector = traced.get("NetworkPolicy", "otlp-egress")["spec"]["podSelector"]
    assert selector == {"matchExpressions": [{"key": cv.LABEL_NAME, "operator": "In", "values": sorted(ALL_APPS)}]}


def test_a_collector_address_gets_a_host_rule_and_grpc():
    m = render(make_cfg(environment={"observability": {"otlp_endpoint": "https://10.8.0.7:4317", "protocol": "grpc"}}))
    assert m.get("NetworkPolicy", "otlp-egress")["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.8.0.7/32"}}], "ports": [{"protocol": "TCP", "port": 4317}]}]
    assert m.get("ConfigMap", "openzaak")["data"]["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"


def test_only_enabled_apps_may_reach_the_collector():
    m = render(_with_collector(apps={"openformulieren": {"enabled": False}}))
    values = m.get("NetworkPolicy", "otlp-egress")["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert values == sorted(set(ALL_APPS) - {"openformulieren"})
