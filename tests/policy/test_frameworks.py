"""Frameworks are data that select controls: the catalog resolves them, the report and `policy check`
show one framework's part with --framework, and an unknown framework is a usage error."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cgkit.cli.policy import policy_app
from cgkit.onboard import onboard
from policies import catalog, report
from policies.model import Context

CATALOG = catalog.load()
NAMES = sorted(n.lower() for n in CATALOG.frameworks)
TENANT = Path(__file__).parent / "tenants" / "gm0344.yaml"
FOREIGN_HOST = Path(__file__).parents[2] / "policies/rules/network/cases/CGK-NET-004/fail-ingress-other-domain.yaml"


def privileged_tenant():
    """GM0344's manifests with the web container privileged: findings of rules of every framework."""
    objects = [d for d in yaml.safe_load_all(TENANT.read_text()) if d]
    web = next(o for o in objects if o["metadata"]["name"] == "openzaak-web")
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    return report.Tenant("GM0344", objects, Context(gemeente_code="GM0344", domain="utrecht.sandbox.cgkit.test"))


def write_controls(tmp_path, frameworks, controls):
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump({"frameworks": frameworks, "controls": controls}))
    return path


def test_the_four_frameworks_are_there():
    assert NAMES == ["bio2", "haven", "nsa", "pss"]


def test_each_framework_selects_the_controls_of_its_numbering():
    for name, framework in CATALOG.frameworks.items():
        assert framework.controls == tuple(c for c in CATALOG.controls if c.startswith(f"{name}:")), name


def test_framework_names_are_case_insensitive_and_an_unknown_one_names_the_valid_ones():
    assert CATALOG.framework("bio2") is CATALOG.framework("BIO2") is CATALOG.frameworks["BIO2"]
    with pytest.raises(catalog.CatalogError, match="unknown framework 'iso'; the frameworks are bio2, haven, nsa, pss"):
        CATALOG.framework("iso")


def test_framework_rules_are_the_rules_that_serve_its_controls():
    rules = CATALOG.framework_rules("pss")
    assert rules and all(any(c.startswith("PSS:") for c in r.controls) for r in rules)
    assert {r.id for r in CATALOG.rules} - {r.id for r in rules} == {
        r.id for r in CATALOG.rules if not any(c.startswith("PSS:") for c in r.controls)}


def test_a_pattern_that_selects_nothing_and_an_unselected_control_are_refused(tmp_path):
    frameworks = {"A": {"title": "A", "controls": ["A:x*", "A:nothing"]}, "B": {"title": "B", "controls": ["B:1"]}}
    controls = {"A:x1": {"ref": "x1", "title": "t"}, "B:1": {"ref": "1", "title": "t"}, "B:2": {"ref": "2", "title": "t"}}
    with pytest.raises(catalog.CatalogError) as e:
        catalog.load_controls(write_controls(tmp_path, frameworks, controls))
    assert "framework A: 'A:nothing' selects no control" in str(e.value)
    assert "control B:2 is selected by no framework" in str(e.value)


def test_a_framework_may_select_controls_of_another_numbering(tmp_path):
    frameworks = {"A": {"title": "A", "controls": ["A:*"]}, "P": {"title": "profile", "controls": ["A:1", "P:*"]}}
    controls = {"A:1": {"ref": "1", "title": "t"}, "A:2": {"ref": "2", "title": "t"}, "P:1": {"ref": "1", "title": "t"}}
    _, loaded = catalog.load_controls(write_controls(tmp_path, frameworks, controls))
    assert loaded["P"].controls == ("A:1", "P:1") and loaded["A"].controls == ("A:1", "A:2")


@pytest.fixture(scope="module")
def reports():
    tenant = privileged_tenant()
    return {name: report.build("sandbox", [tenant], framework=name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_a_framework_report_holds_all_its_controls_and_nothing_else(reports, name):
    data, framework = reports[name], CATALOG.framework(name)
    assert data["framework"] == framework.name and list(data["frameworks"]) == [framework.name]
    assert [c["id"] for c in data["controls"]] == list(framework.controls)
    assert all(c["rules"] for c in data["controls"])
    assert [r["id"] for r in data["rules"]] == [r.id for r in CATALOG.framework_rules(name)]
    cited = {c["id"] for r in data["rules"] for c in r["controls"]}
    assert cited <= set(framework.controls) and all(r["controls"] for r in data["rules"])
    assert {c["file"].split("/")[-2] for r in data["rules"] for c in r["cases"]} == {r["id"] for r in data["rules"]}
    assert data["summary"]["failing_cases"] == 0


@pytest.mark.parametrize("name", NAMES)
def test_a_framework_report_holds_only_the_findings_of_its_rules(reports, name):
    municipality = reports[name]["municipalities"][0]
    rule_ids = {r["id"] for r in reports[name]["rules"]}
    assert set(municipality["rules"]) == rule_ids
    assert municipality["findings"] and {f["rule"] for f in municipality["findings"]} <= rule_ids
    assert municipality["rules"]["CGK-POD-001"] == "violation"  # privileged: every framework has a control for it


def test_the_markdown_of_a_framework_report_says_which_and_lists_only_its_controls(reports):
    page = report.markdown(reports["pss"])
    assert page.startswith("# Policy report — environment sandbox, framework PSS")
    assert "### PSS — " in page and "### BIO2" not in page and "NSA:" not in page


def test_cli_report_takes_the_framework_in_any_case(tmp_path, scratch_root):
    onboard(scratch_root, "sandbox", "GM0344")  # the one municipality of the environment: it has manifests
    manifests = tmp_path / "rendered"
    (manifests / "gm0344").mkdir(parents=True)
    (manifests / "gm0344" / "all.yaml").write_text(TENANT.read_text().replace("docker.io/", "cgkit.sandbox/"))
    result = CliRunner().invoke(policy_app, ["report", "--env", "sandbox", "--framework", "Haven", "--format", "json",
                                             "--manifests", str(manifests), "--root", str(scratch_root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [c["id"] for c in data["controls"]] == list(CATALOG.frameworks["Haven"].controls)


@pytest.mark.parametrize("command", [["report", "--env", "sandbox"], ["check", str(FOREIGN_HOST)]])
def test_an_unknown_framework_is_a_usage_error_listing_the_valid_ones(command):
    result = CliRunner().invoke(policy_app, [*command, "--framework", "iso27001"])
    assert result.exit_code == 2
    assert "'iso27001' is not one of 'bio2', 'haven', 'pss', 'nsa'" in " ".join(result.output.split()).replace("│ ", "")


def test_check_with_a_framework_judges_with_its_rules_only():
    # CGK-NET-004 (hosts within the domain) serves BIO2 controls and no Pod Security Standard
    args = ["check", "--domain", "utrecht.nl", str(FOREIGN_HOST)]
    assert CliRunner().invoke(policy_app, [*args, "--framework", "BIO2"]).exit_code == 1
    result = CliRunner().invoke(policy_app, [*args, "--framework", "pss"])
    assert result.exit_code == 0, result.output
    assert "CGK-NET-004" not in result.output
