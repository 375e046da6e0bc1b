"""Every rule fixture gets the verdict its file name promises, for the rule its folder names.

Narrow to one rule with ``pytest tests/policy/test_rule_cases.py -k CGK-POD-001``.
"""

import pytest

from policies import cases

CASES = cases.discover()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_gets_the_verdict_its_name_promises(case):
    result = cases.run_case(case)
    if case.expect_fail:
        assert result.findings, f"{case.path}: expected {case.rule_id} to flag this, it found nothing"
        assert {f.rule_id for f in result.findings} == {case.rule_id}
        assert all(f.path and f.message for f in result.findings)
    else:
        assert not result.findings, f"{case.path}: expected no {case.rule_id} findings, got " + "; ".join(
            f"{f.path}: {f.message}" for f in result.findings)


def test_fail_findings_point_at_the_offending_field():
    """Spot checks that paths name the field, not just the object (the auditor's 'where')."""
    expected = {
        "CGK-POD-008/fail-deployment-override": ["spec.template.spec.containers[0].securityContext.runAsNonRoot"],
        "CGK-POD-001/fail-deployment-init": ["spec.template.spec.initContainers[0].securityContext.privileged"],
        "CGK-POD-007/fail-cronjob-true":
            ["spec.jobTemplate.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation"],
        "CGK-POD-003/fail-pod-docker-sock": ["spec.volumes[1].hostPath"],
        "CGK-SEC-001/fail-configmap-db-password": ["data.DB_PASSWORD"],
        "CGK-NET-004/fail-ingress-other-domain": ["spec.rules[0].host", "spec.tls[0].hosts[0]"],
    }
    by_name = {c.name: c for c in CASES}
    for name, paths in expected.items():
        assert [f.path for f in cases.run_case(by_name[name]).findings] == paths, name
