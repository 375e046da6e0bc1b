"""The auditor report: fixture evidence per rule, rules per control, verdicts per municipality."""

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cgkit.cli.policy import policy_app
from policies import report
from policies.model import Context
from policies.config import PolicySettings
from policies.registry import rule_ids
from policies.waivers import Waiver

TENANT = Path(__file__).parent / "tenants" / "gm0344.yaml"
DOMAIN = "utrecht.sandbox.cgkit.test"


def compliant():
    objects = [d for d in yaml.safe_load_all(TENANT.read_text()) if d]
    return report.Tenant("GM0344", objects, Context(gemeente_code="GM0344", domain=DOMAIN, allowed_registries=("docker.io",)))


def privileged_copy(code, waivers=()):
    """GM0344's manifests with the web container privileged and an image from quay.io."""
    tenant = compliant()
    objects = json.loads(json.dumps(tenant.objects))
    web = next(o for o in objects if o["metadata"]["name"] == "openzaak-web")
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "quay.io/openzaak/open-zaak:1.15.0"
    return report.Tenant(code, objects, tenant.context, list(waivers))


def waiver(rule, reason, expires):
    return Waiver(rule=rule, reason=reason, approved_by="CISO", expires=expires)


@pytest.fixture(scope="module")
def data():
    future = dt.date.today() + dt.timedelta(days=90)
    waived = privileged_copy("GM0345", [waiver("CGK-POD-001", "vendor debug build until upgrade", future),
                                        waiver("CGK-WKL-005", "vendor image mirror pending", future)])
    expired = privileged_copy("GM0346", [waiver("CGK-POD-001", "old exception", dt.date(2020, 1, 1))])
    writable = compliant()
    for obj in writable.objects:
        for c in (obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or ()):
            c["securityContext"].pop("readOnlyRootFilesystem")
    writable = report.Tenant("GM0347", writable.objects, writable.context)
    return report.build("sandbox", [compliant(), privileged_copy("GM0363"), waived, expired, writable])


def test_every_rule_is_reported_with_its_metadata_and_passing_fixture_evidence(data):
    assert [r["id"] for r in data["rules"]] == rule_ids()
    for r in data["rules"]:
        assert r["title"] and r["rationale"] and r["controls"]
        assert {c["expect"] for c in r["cases"]} == {"pass", "fail"}
        assert [f"{c['file']}: expected {c['expected']}, reported {c['paths']}" for c in r["cases"] if not c["ok"]] == []
    assert data["summary"]["failing_cases"] == 0


def test_every_control_lists_the_rules_that_serve_it(data):
    by_id = {c["id"]: c for c in data["controls"]}
    assert "CGK-TEN-003" in by_id["BIO2:8.22"]["rules"]
    assert by_id["NSA:1.2"]["rules"] == ["CGK-POD-001"]
    assert all(c["rules"] for c in data["controls"])


def test_municipality_verdicts(data):
    by_code = {m["code"]: m for m in data["municipalities"]}
    assert by_code["GM0344"]["verdict"] == "compliant"
    assert by_code["GM0344"]["counts"] == {"pass": len(rule_ids()), "waived": 0, "advisory": 0, "violation": 0}
    assert by_code["GM0363"]["verdict"] == "violations"
    assert by_code["GM0363"]["rules"]["CGK-POD-001"] == by_code["GM0363"]["rules"]["CGK-WKL-005"] == "violation"
    assert by_code["GM0345"]["verdict"] == "compliant"
    assert by_code["GM0345"]["rules"]["CGK-POD-001"] == "waived"
    assert by_code["GM0345"]["rules"]["CGK-POD-011"] == "pass"
    assert any(f["status"] == "waived" and "vendor debug build" in f["waiver_reason"] for f in by_code["GM0345"]["findings"])


def test_advisory_findings_show_but_leave_the_municipality_compliant(data):
    m = {m["code"]: m for m in data["municipalities"]}["GM0347"]
    assert m["rules"]["CGK-POD-011"] == "advisory"
    assert m["verdict"] == "compliant" and m["counts"]["violation"] == 0


def test_in_an_advisory_environment_a_mandatory_violation_is_reported_but_does_not_block():
    tenant = dataclasses.replace(privileged_copy("GM0363"), policy=PolicySettings(enforcement="advisory"))
    built = report.build("sandbox", [tenant])
    [m] = built["municipalities"]
    assert (m["enforcement"], m["verdict"], m["blocking"]) == ("advisory", "compliant", 0)
    assert m["rules"]["CGK-POD-001"] == "advisory"
    assert f"| GM0363 | {m['objects']} | advisory |" in report.markdown(built)


def test_an_expired_waiver_is_an_error_and_is_not_applied(data):
    m = {m["code"]: m for m in data["municipalities"]}["GM0346"]
    assert m["verdict"] == "error"
    assert "expired on 2020-01-01" in m["error"]
    assert m["rules"]["CGK-POD-001"] == "violation"


def test_markdown_has_a_section_per_rule_and_the_municipality_table(data):
    md = report.markdown(data)
    assert all(f"### {i}" in md for i in rule_ids())
    assert "| GM0363 |" in md and "**FAILED**" not in md


def test_html_is_self_contained(data):
    page = report.html(data)
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert not re.search(r"<script|<link|src=|url\(", page)
    assert all(f'id="{i.lower()}"' in page for i in rule_ids())


def test_cli_report_writes_the_file_from_a_manifest_directory(tmp_path, project_root, scratch_root):
    # a project with GM0344 only: every municipality of the environment must have manifests
    (scratch_root / "environments/sandbox/municipalities/gm0344.yaml").write_text(
        (project_root / "environments/sandbox/municipalities/gm0344.yaml").read_text())
    manifests = tmp_path / "rendered"
    (manifests / "gm0344").mkdir(parents=True)
    # the sandbox allows only its own images (environments/sandbox: images.allowed_registries)
    (manifests / "gm0344" / "all.yaml").write_text(TENANT.read_text().replace("docker.io/", "cgkit.sandbox/"))
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--format", "html", "--out",
                                             str(tmp_path / "out"), "--manifests", str(manifests), "--root", str(scratch_root)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "policy-report-sandbox.html").read_text()
    assert "GM0344" in page


def test_cli_report_exits_1_for_a_municipality_that_is_not_compliant_but_still_writes_the_report(tmp_path):
    manifests = tmp_path / "rendered"
    (manifests / "gm0344").mkdir(parents=True)
    # the sandbox allows only its own images (environments/sandbox: images.allowed_registries)
    (manifests / "gm0344" / "all.yaml").write_text(TENANT.read_text().replace("docker.io/", "cgkit.sandbox/"))
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--format", "md", "--out",
                                             str(tmp_path / "out"), "--manifests", str(manifests), "--root", str(tmp_path)])
    assert result.exit_code == 1  # no config for GM0344 under tmp_path: its verdict is "error"
    assert "not compliant: 1 of 1 municipalities: GM0344 (error: " in result.output
    assert "| GM0344 |" in (tmp_path / "out" / "policy-report-sandbox.md").read_text()


def test_a_municipality_of_the_environment_without_manifests_is_not_left_out(tmp_path, project_root):
    manifests = tmp_path / "rendered"
    manifests.mkdir()
    (manifests / "gm0344.yaml").write_text(TENANT.read_text().replace("docker.io/", "cgkit.sandbox/"))
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--format", "json", "--out", str(tmp_path),
                                             "--manifests", str(manifests), "--root", str(project_root)])
    written = json.loads((tmp_path / "policy-report-sandbox.json").read_text())
    missing = {m["code"] for m in written["municipalities"] if m["error"] and "no manifests" in m["error"]}
    assert result.exit_code == 1 and missing and "GM0344" not in missing


def test_cli_report_without_a_renderer_or_manifests_says_what_to_do(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cgkit.render", None)
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "pass --manifests DIR" in result.output


def test_cli_report_renders_every_sandbox_municipality_and_finds_them_compliant():
    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--format", "json", "--root", str(root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    codes = sorted(p.stem.upper() for p in (root / "environments/sandbox/municipalities").glob("*.yaml"))
    assert [m["code"] for m in data["municipalities"]] == codes
    assert all(m["verdict"] == "compliant" and m["objects"] > 0 for m in data["municipalities"]), [
        (m["code"], m["verdict"], m["error"]) for m in data["municipalities"]]


HAVEN = {"server": "https://10.244.0.1:6443", "summary": {"passed": 1, "failed": 1, "not verifiable": 1}, "checks": [
    {"id": "HAVEN-02", "category": "Fundamental", "title": "Self test: does HCC have cluster-admin", "state": "passed",
     "evidence": "may do every verb on every resource", "how": "h"},
    {"id": "HAVEN-03", "category": "Infrastructure", "title": "Multiple availability zones in use", "state": "failed",
     "evidence": "1 zone(s) over 1 real node(s): zone-a", "how": "h"},
    {"id": "HAVEN-12", "category": "Infrastructure", "title": "CNCF Kubernetes Conformance",
     "state": "not verifiable", "evidence": "needs a conformance run | attach it", "how": "h"}]}


def test_the_haven_section_lists_each_check_or_says_it_was_not_run(data):
    assert data["haven"] is None and data["summary"]["haven_failed"] is None
    assert "## Haven: the cluster\n\nNot part of this report: run `cgkit policy report --haven`" in report.markdown(data)
    with_cluster = report.build("sandbox", [compliant()], haven=HAVEN)
    assert with_cluster["summary"]["haven_failed"] == 1
    md = report.markdown(with_cluster)
    assert "The Haven checks against `https://10.244.0.1:6443`: 1 passed, 1 failed, 1 not verifiable." in md
    assert "| HAVEN-03 | failed | Multiple availability zones in use | 1 zone(s) over 1 real node(s): zone-a |" in md
    assert "| HAVEN-12 | not verifiable | CNCF Kubernetes Conformance | needs a conformance run \\| attach it |" in md
    page = report.html(with_cluster)
    assert '<span class="badge failed">failed</span></td><td>Multiple availability zones in use' in page
    assert '<span class="badge advisory">not verifiable</span>' in page and 'href="#haven"' in page


def test_cli_report_with_haven_but_no_cluster_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("CGKIT_SANDBOX_DIR", str(tmp_path / "no-sandbox"))
    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--haven", "--root", str(root),
                                             "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no sandbox kubeconfig" in result.output and "cgkit sandbox up" in result.output
    assert not (tmp_path / "out").exists()


BACKUPS = [{"code": "GM0344", "state": "backed up",
            "last_backup": {"id": "20261207T023000Z", "created": "2026-12-07T02:30:00Z", "bytes": 51234},
            "last_drill": {"at": "2026-12-07T03:00:00+00:00", "backup": "20261207T023000Z"}},
           {"code": "GM0363", "state": "no backup yet", "last_backup": None, "last_drill": None}]


def test_the_backups_section_shows_each_tenants_last_backup_and_drill_or_says_it_was_not_read(data):
    assert data["backups"] is None
    assert "## Backups and restore drills (BIO2 8.13, information backup)\n\nNot part of this report: run " \
           "`cgkit policy report --backups`" in report.markdown(data)
    with_store = report.build("sandbox", [compliant()], backups=BACKUPS)
    md = report.markdown(with_store)
    assert ("| GM0344 | backed up | 20261207T023000Z (2026-12-07T02:30:00Z) | 51234 bytes | "
            "2026-12-07T03:00:00+00:00 of 20261207T023000Z |") in md
    assert "| GM0363 | no backup yet | none |  | none |" in md
    page = report.html(with_store)
    assert 'href="#backups"' in page and "<td>no backup yet</td>" in page


def test_cli_report_with_backups_says_per_tenant_why_nothing_was_read(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--backups", "--root", str(root),
                                             "--format", "json", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "policy-report-sandbox.json").read_text())
    assert {b["state"] for b in written["backups"]} == {"not backed up by cgkit"}, result.output
    assert [b["code"] for b in written["backups"]] == [m["code"] for m in written["municipalities"]]
