"""Malformed manifests fail closed: a rule that cannot read an object reports it; the shape check names
the field; manifest data is JSON-shaped as the API server would receive it."""

import datetime as dt

from policies import manifests, shape
from policies.evaluate import evaluate
from policies.model import Enforcement

BROKEN_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "gm0344"},
              "spec": {"containers": "web"}}


def test_a_rule_that_cannot_read_an_object_reports_it_with_the_field_and_its_own_enforcement():
    findings = [f for f in evaluate([BROKEN_POD]) if f.rule_id == "CGK-POD-001"]
    assert len(findings) == 1
    assert findings[0].path == "spec.containers"
    assert "cannot judge this object (expected a list, got text)" in findings[0].message
    assert findings[0].enforcement is Enforcement.MANDATORY and findings[0].blocking


def test_a_stack_rule_that_cannot_read_its_objects_reports_instead_of_raising():
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gm0344"}}
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "deny", "namespace": "gm0344"}, "spec": "deny everything"}
    findings = [f for f in evaluate([namespace, policy]) if f.rule_id == "CGK-TEN-003"]
    assert [(f.subject.kind, f.path) for f in findings] == [("NetworkPolicy", "spec")]


def test_shape_names_fields_of_known_kinds_and_the_envelope_of_custom_resources():
    assert shape.problems(BROKEN_POD) == [("spec.containers", "expected a list, got text")]
    assert shape.problems({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"labels": [1]}}) == [
        ("metadata.labels", "expected a mapping, got a list")]
    assert shape.problems({"apiVersion": "v1", "kind": "Pod", "spec": {"hostNetwork": "true"}}) == [
        ("spec.hostNetwork", "expected true or false, got text")]
    good = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": 1}}}]}}}}
    assert shape.problems(good) == []


def test_manifest_data_is_json_shaped_as_kubectl_would_send_it():
    data = manifests.json_shaped({80: "http", True: dt.date(2026, 1, 2), None: b"\x00", "s": {1, 2}})
    assert data == {"80": "http", "true": "2026-01-02", "null": "AA==", "s": {"1": None, "2": None}}
