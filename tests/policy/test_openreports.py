"""`cgkit policy check --format openreports`: Report/ClusterReport objects of openreports.io/v1alpha1, as
kubectl would load them: one per namespace, summaries that count the results, references to the objects
checked, and waived or advisory findings as warn."""

import datetime as dt
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cgkit.cli.policy import policy_app
from policies import cases, catalog, openreports

RULES = Path(cases.RULES_DIR)
PRIVILEGED_POD = RULES / "pod_security/cases/CGK-POD-001/fail-pod.yaml"  # namespace gm0344, mandatory
WRITABLE_ROOT = RULES / "pod_security/cases/CGK-POD-011/fail-pod.yaml"  # advisory only
GOOD_POD = RULES / "pod_security/cases/CGK-POD-001/pass-pod.yaml"
CLUSTER_ADMIN = RULES / "rbac/cases/CGK-RBAC-001/fail-clusterrolebinding.yaml"  # cluster-scoped
RESULT_KEYS = {"source", "policy", "rule", "category", "severity", "timestamp", "result", "scored", "resources",
               "message", "properties"}


def check(*args):
    result = CliRunner().invoke(policy_app, ["check", "--format", "openreports", *map(str, args)])
    return result.exit_code, list(yaml.safe_load_all(result.output))


def results(docs, **match):
    return [r for d in docs for r in d["results"] if all(r[k] == v for k, v in match.items())]


@pytest.fixture(scope="module")
def mixed():
    """A privileged pod, a pod with a writable root and a cluster-admin binding, in one run."""
    return check(PRIVILEGED_POD, WRITABLE_ROOT, CLUSTER_ADMIN)


def test_the_output_is_one_cluster_report_and_one_report_per_namespace(mixed):
    code, docs = mixed
    assert code == 1
    assert [(d["apiVersion"], d["kind"], d["metadata"].get("namespace")) for d in docs] == [
        ("openreports.io/v1alpha1", "ClusterReport", None), ("openreports.io/v1alpha1", "Report", "gm0344")]
    assert docs[1]["scope"] == {"apiVersion": "v1", "kind": "Namespace", "name": "gm0344"}
    assert all(d["metadata"]["name"] == "cgkit-policy" and d["source"] == "cgkit-policy" for d in docs)


def test_each_summary_counts_its_results(mixed):
    for d in mixed[1]:
        assert list(d["summary"]) == list(openreports.RESULTS)
        assert d["summary"] == {k: sum(r["result"] == k for r in d["results"]) for k in openreports.RESULTS}
        assert d["summary"]["pass"] and d["summary"]["fail"]


def test_every_result_has_the_schema_fields_and_names_the_object(mixed):
    rule_ids = {r.id for r in catalog.load().rules}
    for d in mixed[1]:
        for r in d["results"]:
            assert set(r) == RESULT_KEYS
            assert r["policy"] in rule_ids and r["result"] in openreports.RESULTS and r["severity"] in {"high", "medium"}
            assert isinstance(r["timestamp"]["seconds"], int) and r["timestamp"]["nanos"] == 0
            assert all(isinstance(v, str) for v in r["properties"].values()) and r["properties"]["controls"]
            [ref] = r["resources"]
            assert ref["apiVersion"] and ref["name"]
            if d["kind"] == "ClusterReport":
                assert ref == {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                               "name": "gm0344-cluster-admin"}
            else:
                assert ref["kind"] == "Pod" and ref["namespace"] == d["metadata"]["namespace"]


def test_mandatory_findings_fail_and_advisory_ones_warn_naming_the_field(mixed):
    [admin] = results(mixed[1], policy="CGK-RBAC-001")
    assert admin["result"] == "fail" and admin["scored"] and admin["properties"]["path"] == "roleRef.name"
    assert admin["properties"]["file"].endswith("fail-clusterrolebinding.yaml")
    [writable] = results(mixed[1], policy="CGK-POD-011", result="warn")
    assert writable["severity"] == "medium" and not writable["scored"]
    assert writable["message"].startswith(writable["properties"]["path"] + ": ")
    passed = results(mixed[1], policy="CGK-POD-008", result="pass")
    assert len(passed) == 2 and passed[0]["message"] == catalog.load().rule("CGK-POD-008").title


def test_a_waived_finding_is_a_warn_that_carries_its_waiver(tmp_path):
    expires = dt.date.today() + dt.timedelta(days=30)
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(yaml.safe_dump({"waivers": [{"rule": "CGK-POD-001", "reason": "vendor debug build",
                                                    "approved_by": "CISO Utrecht", "expires": str(expires)}]}))
    code, docs = check("--waivers", waivers, PRIVILEGED_POD)
    [waived] = results(docs, policy="CGK-POD-001")
    assert waived["result"] == "warn" and waived["properties"]["waived"] == "true"
    assert "vendor debug build" in waived["properties"]["waiver"] and "CISO Utrecht" in waived["properties"]["waiver"]
    assert code == 0 and [d["summary"]["fail"] for d in docs] == [0]  # the waiver was the only finding: nothing blocks


def test_objects_without_a_namespace_go_to_the_tenant_or_to_kubectls_namespace(tmp_path):
    pod = yaml.safe_load(GOOD_POD.read_text())
    del pod["metadata"]["namespace"]
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    code, [doc] = check(manifest)
    assert code == 0 and doc["kind"] == "Report" and "namespace" not in doc["metadata"] and "scope" not in doc
    assert doc["summary"]["fail"] == 0 and all("namespace" not in r["resources"][0] for r in doc["results"])
    _, [doc] = check("--gemeente", "GM0363", manifest)
    assert doc["metadata"]["namespace"] == "gm0363" and doc["results"][0]["resources"][0]["namespace"] == "gm0363"


def test_with_a_framework_the_reports_hold_only_its_rules():
    _, docs = check("--framework", "PSS", PRIVILEGED_POD, CLUSTER_ADMIN)
    pss = {r.id for r in catalog.load().framework_rules("pss")}
    # no PSS rule judges a ClusterRoleBinding: its ClusterReport is empty, but says it was checked
    assert [d["kind"] for d in docs] == ["ClusterReport", "Report"] and docs[0]["results"] == []
    docs = docs[1:]
    assert docs[0]["metadata"]["name"] == "cgkit-policy-pss"
    assert {r["policy"] for r in docs[0]["results"]} <= pss and results(docs, policy="CGK-POD-001", result="fail")


def test_a_namespace_past_the_size_limit_continues_in_numbered_reports(monkeypatch):
    """One tenant's Report is about 550 kB; a bigger chart's must not pass the API server's request
    limit, so the results continue in <name>-2 and on, each with its own summary."""
    _, [whole] = check(PRIVILEGED_POD)
    monkeypatch.setattr(openreports, "MAX_REPORT_BYTES", 3000)
    _, docs = check(PRIVILEGED_POD)
    assert len(docs) > 2 and [d["metadata"]["name"] for d in docs[:3]] == ["cgkit-policy", "cgkit-policy-2", "cgkit-policy-3"]
    assert all(d["metadata"]["namespace"] == "gm0344" and len(yaml.safe_dump(d)) < 3000 + 2000 for d in docs)
    assert [r["policy"] for d in docs for r in d["results"]] == [r["policy"] for r in whole["results"]]
    for d in docs:
        assert sum(d["summary"].values()) == len(d["results"])


def test_objects_without_a_namespace_never_replace_the_report_of_a_namespace(tmp_path):
    """Applied with -n gm0344, a Report of objects without a namespace must not overwrite the one of
    objects that name gm0344: the two have different names."""
    pod = yaml.safe_load(GOOD_POD.read_text())
    bare = {**pod, "metadata": {k: v for k, v in pod["metadata"].items() if k != "namespace"}}
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all([pod, bare]))
    _, docs = check(manifest)
    assert [(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs] == [
        (pod["metadata"]["namespace"], "cgkit-policy"), (None, "cgkit-policy-no-namespace")]
