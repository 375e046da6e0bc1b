"""The catalog is consistent: ids unique and well-formed, controls exist and are all served, every rule
has a passing and a failing fixture, fixture folders name real rules, metadata is complete."""

import dataclasses
import re

import pytest

from policies import cases, catalog
from policies.model import RULE_ID, Enforcement, Scope

CATALOG = catalog.load()
CASES = cases.discover()


def test_there_are_at_least_thirty_rules():
    assert len(CATALOG.rules) >= 30


def test_rule_ids_are_unique_and_well_formed():
    ids = [r.id for r in CATALOG.rules]
    assert len(ids) == len(set(ids))
    assert all(RULE_ID.fullmatch(i) for i in ids)


def test_rule_id_prefix_matches_its_family():
    prefixes = {"pod_security": "POD", "workload": "WKL", "secrets": "SEC", "network": "NET", "rbac": "RBAC",
                "tenancy": "TEN"}
    assert {r.id: r.id.split("-")[1] for r in CATALOG.rules} == {r.id: prefixes[r.family] for r in CATALOG.rules}


def test_duplicate_ids_are_refused():
    first = CATALOG.rules[0]
    with pytest.raises(catalog.CatalogError, match=f"{first.id} is used twice"):
        catalog.build([first, dataclasses.replace(first, title="another")], dict(CATALOG.controls), {})


def test_unknown_controls_are_refused():
    bad = dataclasses.replace(CATALOG.rules[0], controls=("BIO2:99.99",))
    with pytest.raises(catalog.CatalogError, match="unknown control BIO2:99.99"):
        catalog.build([bad], dict(CATALOG.controls), {})


def test_every_control_is_served_by_a_rule():
    assert [c for c in CATALOG.controls if not CATALOG.rules_for_control(c)] == []


def test_every_framework_selects_controls_and_every_control_is_selected():
    assert all(f.controls for f in CATALOG.frameworks.values())
    assert {c for f in CATALOG.frameworks.values() for c in f.controls} == set(CATALOG.controls)


def test_bio2_controls_are_iso_27002_2022_controls_or_bio2_v1_2_measures():
    # a control ``8.22`` (ISO/IEC 27002:2022, as BIO2 adopts it) or an overheidsmaatregel ``8.27.01``
    # (the control in two digits, as BIO2 v1.2 numbers them); the id is the ref
    for c in CATALOG.controls.values():
        if c.framework == "BIO2":
            assert re.fullmatch(r"[5-8]\.[1-9]\d?|[5-8]\.\d\d\.\d\d", c.ref) and c.id == f"BIO2:{c.ref}", c.id


def test_every_rule_has_a_pass_and_a_fail_case():
    verdicts = {}
    for c in CASES:
        verdicts.setdefault(c.rule_id, set()).add(c.expect_fail)
    assert {r.id: verdicts.get(r.id, set()) for r in CATALOG.rules} == {r.id: {True, False} for r in CATALOG.rules}


def test_workload_rules_have_a_bare_pod_and_a_controller_case():
    import yaml
    for r in CATALOG.rules:
        if r.scope is not Scope.OBJECT or "Pod" not in r.kinds:
            continue
        kinds = {yaml.safe_load(c.path.read_text())["kind"] for c in CASES if c.rule_id == r.id and c.expect_fail}
        assert "Pod" in kinds and kinds - {"Pod"}, f"{r.id} fail cases cover only {kinds}"


def test_case_folders_name_known_rules_and_files_follow_the_naming():
    assert {c.rule_id for c in CASES} <= set(CATALOG.by_id)
    assert cases.misnamed() == []


def test_metadata_is_complete():
    for r in CATALOG.rules:
        assert r.title and r.title[0].isupper() and not r.title.endswith("."), r.id
        assert len(r.rationale) > 40, r.id
        assert isinstance(r.enforcement, Enforcement)
        assert r.kinds or r.scope is Scope.OBJECT, f"stack rule {r.id} must name the kinds it reads"


def test_the_pack_version_is_the_kit_version():
    import tomllib

    import yaml

    root = catalog.POLICIES_DIR.parent
    pack = yaml.safe_load((catalog.POLICIES_DIR / "PulumiPolicy.yaml").read_text())
    assert str(pack["version"]) == tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def test_a_broken_controls_file_is_one_error_naming_it(tmp_path, scratch_root, monkeypatch, capsys):
    """Every command reads the catalog (validate judges waivers by it): a broken controls.yaml is one
    line naming the file, never a traceback."""
    import pytest

    from cgkit.cli.app import main
    from policies import catalog

    broken = tmp_path / "controls.yaml"
    for text, says in (("frameworks: [unclosed\n", "controls.yaml:2: invalid YAML"),
                       ("frameworks: {BIO2: {url: x}}\ncontrols: {}\n", "the field 'title' is missing"),
                       ("- a list\n", "expected a mapping")):
        broken.write_text(text)
        with pytest.raises(catalog.CatalogError, match=says.replace("[", r"\[")):
            catalog.load_controls(broken)
    monkeypatch.setattr(catalog, "load_controls", lambda path=broken: catalog.__dict__["_read_controls"](broken))
    catalog.load.cache_clear()
    monkeypatch.chdir(scratch_root)
    (scratch_root / "environments/sandbox/municipalities/gm0344.yaml").write_text("code: GM0344\ndomain: utrecht.nl\n")
    try:
        assert main(["validate"]) == 1
    finally:
        catalog.load.cache_clear()
    output = capsys.readouterr()
    assert "Traceback" not in output.err + output.out and "internal error" not in output.err
    assert "controls.yaml: expected a mapping" in output.err + output.out
