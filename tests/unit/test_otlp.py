"""cgkit.otlp: which OTLP endpoints a NetworkPolicy can name, and the resource attributes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgkit.config import loader
from cgkit.errors import ConfigError
from cgkit.otlp import Destination, destination, resource_attributes


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("http://otel-collector.observability.svc:4318", Destination(port=4318, namespace="observability")),
    ("https://collector.telemetry.svc.cluster.local:4317/", Destination(port=4317, namespace="telemetry")),
    ("http://10.8.0.7:4318", Destination(port=4318, cidr="10.8.0.7/32")),
    ("http://[2001:db8::7]:4317", Destination(port=4317, cidr="2001:db8::7/128")),
])
def test_cluster_services_and_addresses_are_accepted(endpoint, expected):
    assert destination(endpoint) == expected


@pytest.mark.parametrize(("endpoint", "reason"), [
    ("grpc://otel.observability.svc:4317", "has scheme 'grpc'"),
    ("otel-collector:4318", "has scheme 'otel-collector'"),
    ("http://otel.observability.svc", "has no port"),
    ("http://otel.observability.svc:0", "has no port"),
    ("http://otel.observability.svc:70000", "is not a URL"),
    ("http://otel.example.nl:4318", "a NetworkPolicy cannot allow a host name outside the cluster"),
    ("http://otel-collector:4318", "otel-collector is not a cluster Service"),
    ("http://otel.gm0344.svc:4318", "not in 'gm0344'"),
    ("http://otel.kube-system.svc:4318", "not in 'kube-system'"),
    ("http://127.0.0.1:4318", "is the pod itself"),
    ("http://169.254.169.254:4318", "link-local, multicast or broadcast"),
    ("http://224.0.0.1:4318", "link-local, multicast or broadcast"),
    ("http://255.255.255.255:4318", "link-local, multicast or broadcast"),
    ("http://[fe80::1%25eth0]:4318", "names a network interface"),
    ("http://[::ffff:10.0.0.5]:4318", "write 10.0.0.5"),
    ("http://user:pw@otel.observability.svc:4318", "carries credentials"),
    ("http://otel.observability.svc:4318/v1/traces", "has a path, query or fragment"),
])
def test_other_endpoints_are_refused_saying_what_is_valid(endpoint, reason):
    with pytest.raises(ValueError) as caught:
        destination(endpoint)
    assert reason in str(caught.value)
    assert "a valid endpoint is http(s)://<host>:<port>" in str(caught.value)


def test_resource_attributes_use_the_semantic_convention_names():
    assert resource_attributes(service="openzaak-web", namespace="gm0344", code="gm0344", environment="test") == (
        "service.name=openzaak-web,service.namespace=gm0344,cgkit.gemeente.code=GM0344,"
        "deployment.environment.name=test")


def test_values_are_percent_encoded():
    assert "service.name=a%2Cb%3Dc" in resource_attributes(service="a,b=c", namespace="n", code="GM0344",
                                                           environment="e")


def test_a_bad_endpoint_names_file_line_and_field(scratch_root: Path) -> None:
    path = loader.environment_file(scratch_root, "sandbox")
    path.write_text(path.read_text() + "observability:\n  otlp_endpoint: http://otel.example.nl:4318\n")
    with pytest.raises(ConfigError) as caught:
        loader.load_environment(scratch_root, "sandbox")
    (issue,) = caught.value.issues
    assert issue.field == "observability.otlp_endpoint"
    line = len(path.read_text().splitlines())
    assert issue.render().startswith(f"environments/sandbox/environment.yaml:{line}: observability.otlp_endpoint: "
                                     "'http://otel.example.nl:4318': otel.example.nl is not a cluster Service")


def test_a_good_endpoint_loads_and_defaults_to_http_protobuf(scratch_root: Path) -> None:
    path = loader.environment_file(scratch_root, "sandbox")
    path.write_text(path.read_text() + "observability:\n  otlp_endpoint: http://otel.observability.svc:4318\n")
    observability = loader.load_environment(scratch_root, "sandbox").observability
    assert observability.protocol == "http/protobuf"
    assert observability.destination == Destination(port=4318, namespace="observability")
