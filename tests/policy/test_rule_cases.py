"""Every rule fixture gets the verdict its file name promises, for the rule its folder names; a fail
case only passes when the rule reports exactly the field paths its ``# expect:`` line names.

Narrow to one rule with ``pytest tests/policy/test_rule_cases.py -k CGK-POD-001``.
"""

import pytest

from policies import cases

CASES = cases.discover()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_gets_the_verdict_its_name_promises(case):
    result = cases.run_case(case)
    if case.expect_fail:
        assert {f.rule_id for f in result.findings} <= {case.rule_id}
        assert all(f.path and f.message for f in result.findings)
        assert result.ok, (f"{case.path}: {case.rule_id} must report exactly the paths of its '# expect:' line\n"
                           f"  expected: {sorted(case.expected_paths or ())}\n  reported: {sorted(result.reported)}")
    else:
        assert result.ok, f"{case.path}: expected no {case.rule_id} findings, got " + "; ".join(
            f"{f.path}: {f.message}" for f in result.findings)


def test_every_fail_case_and_no_pass_case_states_its_expected_paths():
    assert cases.expectation_errors(CASES) == []


def test_expectation_errors_name_the_file(tmp_path):
    folder = tmp_path / "pod_security" / "cases" / "CGK-POD-001"
    folder.mkdir(parents=True)
    (folder / "fail-bare.yaml").write_text("# No expectation.\nkind: Pod\n")
    (folder / "pass-claims.yaml").write_text("# A pass case with one.\n# expect: spec.hostPID\nkind: Pod\n")
    (folder / "fail-empty.yaml").write_text("# An empty one.\n# expect: ,\nkind: Pod\n")
    (folder / "fail-good.yaml").write_text("# Fine.\n# expect: spec.hostPID, spec.hostIPC\nkind: Pod\n")
    errors = cases.expectation_errors(cases.discover(tmp_path))
    assert [e.split(": ")[0] for e in errors] == [str(folder / n) for n in ("fail-bare.yaml", "fail-empty.yaml",
                                                                           "pass-claims.yaml")]
    assert cases.discover(tmp_path)[2].expected_paths == {"spec.hostPID", "spec.hostIPC"}


def test_a_fail_case_with_the_wrong_paths_is_not_ok(tmp_path):
    """Any finding used to be enough; now a finding on another field fails the case."""
    case = next(c for c in CASES if c.name == "CGK-POD-001/fail-pod")
    wrong = tmp_path / "fail-pod.yaml"
    wrong.write_text(case.path.read_text().replace("# expect: ", "# expect: spec.hostPID, ", 1))
    result = cases.run_case(cases.Case(case.rule_id, True, wrong))
    assert result.findings and not result.ok
    assert cases.run_case(case).ok
