"""`cgkit policy check` in-process: exit statuses, the three formats, context flags, waivers, bad input."""

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cgkit.cli.policy import policy_app
from policies import cases

RULES = Path(cases.RULES_DIR)
GOOD_POD = RULES / "pod_security/cases/CGK-POD-001/pass-pod.yaml"
PRIVILEGED_POD = RULES / "pod_security/cases/CGK-POD-001/fail-pod.yaml"
WRITABLE_ROOT = RULES / "pod_security/cases/CGK-POD-011/fail-pod.yaml"  # advisory only
FOREIGN_HOST = RULES / "network/cases/CGK-NET-004/fail-ingress-other-domain.yaml"


def run(*args):
    return CliRunner().invoke(policy_app, ["check", *map(str, args)])


def test_a_compliant_manifest_exits_0():
    result = run(GOOD_POD)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("0 finding(s), 0 blocking, in 1 object(s) from 1 file(s)")


def test_a_mandatory_violation_exits_1_with_one_line_naming_file_object_rule_and_field():
    result = run(PRIVILEGED_POD)
    assert result.exit_code == 1
    line = result.output.splitlines()[0]
    assert line.startswith(f"{PRIVILEGED_POD}: Pod/gm0344/openzaak-web: CGK-POD-001 [mandatory] "
                           "spec.containers[0].securityContext.privileged: container 'web' is privileged")


def test_advisory_findings_are_reported_but_exit_0():
    result = run(WRITABLE_ROOT)
    assert result.exit_code == 0
    assert "CGK-POD-011 [advisory]" in result.output


def test_directories_and_multi_document_files_are_read(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "both.yaml").write_text(GOOD_POD.read_text() + "\n---\n" + PRIVILEGED_POD.read_text())
    (tmp_path / "notes.txt").write_text("not yaml: [")
    result = run(tmp_path)
    assert result.exit_code == 1
    assert "in 2 object(s) from 1 file(s)" in result.output


def test_json_output_lists_findings_and_summary():
    data = json.loads(run("--format", "json", PRIVILEGED_POD).output)
    assert data["summary"]["blocking"] == 1
    assert data["findings"][0]["rule"] == "CGK-POD-001"
    assert data["findings"][0]["path"] == "spec.containers[0].securityContext.privileged"


def test_sarif_output_is_a_sarif_2_1_0_log_with_the_rule_catalog():
    log = json.loads(run("--format", "sarif", PRIVILEGED_POD).output)
    assert log["version"] == "2.1.0"
    driver_rules = log["runs"][0]["tool"]["driver"]["rules"]
    result = log["runs"][0]["results"][0]
    assert driver_rules[result["ruleIndex"]]["id"] == result["ruleId"] == "CGK-POD-001"
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(PRIVILEGED_POD)


def test_the_domain_check_needs_a_domain():
    assert "CGK-NET-004" not in run(FOREIGN_HOST).output
    assert "CGK-NET-004" in run("--domain", "utrecht.nl", FOREIGN_HOST).output


def test_registry_flags_restrict_images():
    assert "CGK-WKL-005" not in run(GOOD_POD).output
    assert "CGK-WKL-005" in run("--registry", "ghcr.io", GOOD_POD).output
    assert "CGK-WKL-005" not in run("--registry", "docker.io/openzaak", GOOD_POD).output


def test_gemeente_flag_sets_the_tenant_and_its_expected_label():
    # the pod lives in gm0344 and is labelled GM0344: judged as another municipality's pod it is off
    assert "CGK-WKL-006" not in run("--gemeente", "GM0344", GOOD_POD).output
    output = run("--gemeente", "GM0363", "--tenant-namespace", "gm0344", GOOD_POD).output
    assert "CGK-WKL-006" in output and "set it to GM0363" in output


def _waivers(tmp_path, rule="CGK-POD-001", expires=None):
    expires = expires or (dt.date.today() + dt.timedelta(days=30)).isoformat()
    path = tmp_path / "gm0344.yaml"
    path.write_text(f"code: GM0344\nwaivers:\n  - rule: {rule}\n    reason: debug sidecar during migration\n"
                    f"    approved_by: CISO Utrecht\n    expires: {expires}\n")
    return path


def test_a_waived_violation_is_reported_as_waived_and_does_not_block(tmp_path):
    result = run("--waivers", _waivers(tmp_path), PRIVILEGED_POD)
    assert result.exit_code == 0, result.output
    assert "CGK-POD-001 [waived]" in result.output
    assert "debug sidecar during migration (approved by CISO Utrecht" in result.output


LATEST = (dt.date.today() + dt.timedelta(days=180)).isoformat()


@pytest.mark.parametrize("rule, expires, message", [
    ("CGK-POD-001", "2020-01-01", "gm0344.yaml: waivers[0].expires: waiver of CGK-POD-001 expired on 2020-01-01"),
    ("CGK-XXX-999", None, "gm0344.yaml: waivers[0].rule: unknown policy rule 'CGK-XXX-999'"),
    ("CGK-POD-001", (dt.date.today() + dt.timedelta(days=181)).isoformat(),
     "gm0344.yaml: waivers[0].expires: waiver of mandatory rule CGK-POD-001 runs until"),
])
def test_expired_unknown_or_too_long_waivers_are_errors(tmp_path, rule, expires, message):
    result = run("--waivers", _waivers(tmp_path, rule, expires), PRIVILEGED_POD)
    assert result.exit_code == 1
    assert message in result.output
    assert "CGK-POD-001 [" not in result.output  # nothing was checked


def test_a_waiver_past_the_limit_names_the_latest_allowed_date(tmp_path):
    expires = (dt.date.today() + dt.timedelta(days=181)).isoformat()
    assert f"the latest allowed date is {LATEST}" in run("--waivers", _waivers(tmp_path, expires=expires), PRIVILEGED_POD).output
    assert run("--waivers", _waivers(tmp_path, expires=LATEST), PRIVILEGED_POD).exit_code == 0


def test_bad_yaml_is_an_error_naming_file_and_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n")
    result = run(bad)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {bad}:")
    assert "invalid YAML" in result.output


def test_a_document_that_is_not_an_object_is_an_error(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- just\n- a list\n")
    result = run(bad)
    assert result.exit_code == 1
    assert f"error: {bad}: document 1 is not a Kubernetes object" in result.output


def test_a_missing_path_is_an_error(tmp_path):
    result = run(tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert "no such file or directory" in result.output


def test_a_pack_config_file_gives_the_context(tmp_path):
    from policies.config import pack_config
    from policies.model import Context
    from policies.registry import enforcement_levels

    config = tmp_path / "pack.json"
    config.write_text(json.dumps(pack_config(Context(gemeente_code="GM0344", domain="utrecht.nl"), enforcement_levels())))
    assert "CGK-NET-004" in run("--config", config, FOREIGN_HOST).output


def _pack_config(tmp_path, **policy):
    from policies.config import PolicySettings, pack_config
    from policies.model import Context
    from policies.registry import enforcement_levels

    config = tmp_path / "pack.json"
    config.write_text(json.dumps(pack_config(Context(gemeente_code="GM0344"), enforcement_levels(),
                                             policy=PolicySettings(**policy))))
    return config


def test_an_advisory_environment_reports_a_mandatory_violation_without_blocking(tmp_path):
    assert run("--config", _pack_config(tmp_path), PRIVILEGED_POD).exit_code == 1
    result = run("--config", _pack_config(tmp_path, enforcement="advisory"), PRIVILEGED_POD)
    assert result.exit_code == 0, result.output
    assert "CGK-POD-001 [advisory]" in result.output


def test_a_bad_enforcement_in_a_config_file_names_the_valid_values(tmp_path):
    config = tmp_path / "pack.json"
    config.write_text(json.dumps({"enforcement": "strict"}))
    result = run("--config", config, PRIVILEGED_POD)
    assert result.exit_code == 1
    assert "pack.json: enforcement: Input should be 'mandatory' or 'advisory' (got 'strict')" in result.output


def test_standard_input_is_read_for_a_dash():
    result = CliRunner().invoke(policy_app, ["check", "-"], input=PRIVILEGED_POD.read_text())
    assert result.exit_code == 1
    assert result.output.startswith("<stdin>: Pod/gm0344/openzaak-web: CGK-POD-001")
