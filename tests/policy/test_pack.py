"""The CrossGuard adapter, exercised the way the engine calls it (without the engine).

Props are built as the analyzer builds them: protobuf-shaped dicts through pulumi_policy's
deserialize_properties (secrets, unknown sentinels) and unknown_checking_proxy. The real-engine run
(`pulumi preview --policy-pack policies`) is an integration test.
"""

import json

import pytest
import yaml
from pulumi_policy import EnforcementLevel, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResource
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policies import cases, pack
from policies.config import PolicySettings, pack_config
from policies.model import Context, Enforcement
from policies.registry import enforcement_levels, rule_ids
from policies.waivers import Waiver

POLICIES = {p.name: p for p in pack.policies()}
PRIVILEGED = yaml.safe_load((cases.RULES_DIR / "pod_security/cases/CGK-POD-001/fail-pod.yaml").read_text())
GOOD_DEPLOYMENT = yaml.safe_load((cases.RULES_DIR / "pod_security/cases/CGK-POD-008/pass-deployment.yaml").read_text())
OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def engine_props(manifest, drop_type_fields=True):
    """What the analyzer hands a policy: deserialized, proxied props (apiVersion/kind may be absent)."""
    raw = json.loads(json.dumps(manifest))
    if drop_type_fields:
        raw.pop("apiVersion", None), raw.pop("kind", None)
    return unknown_checking_proxy(deserialize_properties(raw))


def validate(policy_name, resource_type, props, config=None):
    violations = []
    args = ResourceValidationArgs(resource_type, props, "urn:pulumi:s::p::" + resource_type + "::x", "x", OPTS,
                                  None, config)
    POLICIES[policy_name].validate(args, lambda message, urn=None: violations.append(message))
    return violations


def test_there_is_one_policy_per_rule_with_the_rules_enforcement():
    assert list(POLICIES) == rule_ids()
    assert POLICIES["CGK-POD-001"].enforcement_level is EnforcementLevel.MANDATORY
    assert POLICIES["CGK-POD-011"].enforcement_level is EnforcementLevel.ADVISORY
    assert POLICIES["CGK-POD-001"].tags == ["PSS:baseline/privileged", "NSA:1.2", "BIO2:8.27.01", "Haven:node-hardening"]


@pytest.mark.parametrize("token, expected", [
    ("kubernetes:core/v1:Pod", ("v1", "Pod")),
    ("kubernetes:apps/v1:Deployment", ("apps/v1", "Deployment")),
    ("kubernetes:networking.k8s.io/v1:Ingress", ("networking.k8s.io/v1", "Ingress")),
    ("kubernetes:core/v1:ServiceAccountPatch", ("v1", "ServiceAccount")),
    ("kubernetes:core/v1:ConfigMapList", None),
    ("kubernetes:yaml/v2:ConfigGroup", None),
    ("kubernetes:helm.sh/v4:Chart", None),
    ("pulumi:providers:kubernetes", None),
    ("random:index/randomPassword:RandomPassword", None),
])
def test_type_tokens_map_to_api_version_and_kind(token, expected):
    assert pack.api_version_and_kind(token) == expected


def test_props_become_the_manifest_with_api_version_and_kind_from_the_type():
    manifest = pack.manifest_of("kubernetes:core/v1:Pod", engine_props(PRIVILEGED))
    assert manifest == PRIVILEGED


def test_secret_values_are_unwrapped():
    raw = {"metadata": {"name": "cfg"}, "data": {"DB_PASSWORD": {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": "pw"}}}
    props = unknown_checking_proxy(deserialize_properties(raw, True))
    assert pack.manifest_of("kubernetes:core/v1:ConfigMap", props)["data"] == {"DB_PASSWORD": "pw"}


def test_a_violation_is_reported_with_object_field_and_fix():
    [message] = validate("CGK-POD-001", "kubernetes:core/v1:Pod", engine_props(PRIVILEGED))
    assert message == ("Pod/gm0344/openzaak-web: spec.containers[0].securityContext.privileged: "
                       "container 'web' is privileged; remove securityContext.privileged or set it to false")


def test_a_compliant_resource_and_other_kinds_report_nothing():
    assert validate("CGK-POD-001", "kubernetes:apps/v1:Deployment", engine_props(GOOD_DEPLOYMENT)) == []
    assert validate("CGK-RBAC-001", "kubernetes:apps/v1:Deployment", engine_props(PRIVILEGED)) == []
    assert validate("CGK-POD-001", "random:index/randomPassword:RandomPassword", engine_props({"length": 32})) == []


def test_an_unknown_value_defers_only_the_rules_that_read_it():
    manifest = json.loads(json.dumps(PRIVILEGED))
    manifest["spec"]["containers"][0]["image"] = UNKNOWN_STRING_VALUE
    with pytest.raises(UnknownValueError):  # the engine reports "can't run during preview", reruns at up
        validate("CGK-WKL-004", "kubernetes:core/v1:Pod", engine_props(manifest))
    assert len(validate("CGK-POD-001", "kubernetes:core/v1:Pod", engine_props(manifest))) == 1


def test_an_unknown_namespace_reads_as_the_configs_tenant_namespace():
    service = yaml.safe_load((cases.RULES_DIR / "network/cases/CGK-NET-001/fail-service-loadbalancer.yaml").read_text())
    service["metadata"]["namespace"] = UNKNOWN_STRING_VALUE  # the Namespace resource's output, first preview
    token = "kubernetes:core/v1:Service"
    with pytest.raises(UnknownValueError):
        validate("CGK-NET-001", token, engine_props(service))
    config = pack_config(Context(gemeente_code="GM0344"), enforcement_levels())["CGK-NET-001"]
    [message] = validate("CGK-NET-001", token, engine_props(service), config)
    assert message.startswith("Service/gm0344/openzaak: spec.type:")


def test_context_comes_from_the_policy_config_and_is_absent_without_it():
    ingress = yaml.safe_load((cases.RULES_DIR / "network/cases/CGK-NET-004/fail-ingress-other-domain.yaml").read_text())
    token = "kubernetes:networking.k8s.io/v1:Ingress"
    assert validate("CGK-NET-004", token, engine_props(ingress)) == []
    config = pack_config(Context(gemeente_code="GM0344", domain="utrecht.nl"), enforcement_levels())["CGK-NET-004"]
    assert len(validate("CGK-NET-004", token, engine_props(ingress), config)) == 2


def test_a_waived_rule_is_advisory_in_the_config_and_says_waived_in_the_message():
    waiver = Waiver(rule="CGK-POD-001", reason="debug sidecar", approved_by="CISO",
                    expires=__import__("datetime").date(2099, 1, 1))
    config = pack_config(Context(gemeente_code="GM0344"), enforcement_levels(), [waiver])
    assert config["CGK-POD-001"]["enforcementLevel"] == "advisory"
    assert config["CGK-POD-002"]["enforcementLevel"] == "mandatory"
    [message] = validate("CGK-POD-001", "kubernetes:core/v1:Pod", engine_props(PRIVILEGED), config["CGK-POD-001"])
    assert message.endswith("[waived: debug sidecar (approved by CISO, until 2099-01-01)]")


ADVISORY_RULE = "CGK-POD-011"  # read-only root filesystem: advisory in every environment


def test_by_default_every_rule_keeps_its_own_level():
    config = pack_config(Context(gemeente_code="GM0344"), enforcement_levels())
    assert {rid: Enforcement(s["enforcementLevel"]) for rid, s in config.items()} == enforcement_levels()
    assert config["CGK-POD-001"]["enforcement"] == "mandatory"


def test_an_advisory_environment_makes_mandatory_rules_advisory():
    assert enforcement_levels()["CGK-POD-001"] is Enforcement.MANDATORY
    assert enforcement_levels()[ADVISORY_RULE] is Enforcement.ADVISORY
    config = pack_config(Context(gemeente_code="GM0344"), enforcement_levels(), policy=PolicySettings(enforcement="advisory"))
    assert {s["enforcementLevel"] for s in config.values()} == {"advisory"}
    assert config["CGK-POD-001"]["enforcement"] == "advisory"
    [message] = validate("CGK-POD-001", "kubernetes:core/v1:Pod", engine_props(PRIVILEGED), config["CGK-POD-001"])
    assert "[waived" not in message  # reported, not waived: the engine shows it as advisory


def _resource(manifest, token, status_unknown=False):
    raw = json.loads(json.dumps(manifest))
    if status_unknown:
        raw["status"] = UNKNOWN_STRING_VALUE
    name = manifest["metadata"]["name"]
    return PolicyResource(token, unknown_checking_proxy(deserialize_properties(raw)), f"urn:{token}::{name}", name,
                          OPTS, None, None, [], {})


def test_stack_policy_reports_a_tenant_namespace_without_default_deny_on_the_namespace_urn():
    case = next(c for c in cases.discover() if c.name == "CGK-TEN-003/fail-stack-none")
    objects, _ = cases.load(case)
    tokens = {"Namespace": "kubernetes:core/v1:Namespace", "ResourceQuota": "kubernetes:core/v1:ResourceQuota",
              "LimitRange": "kubernetes:core/v1:LimitRange"}
    resources = [_resource(o, tokens[o["kind"]], status_unknown=True) for o in objects]
    reported = []
    POLICIES["CGK-TEN-003"].validate(StackValidationArgs(resources, {}), lambda m, urn=None: reported.append((m, urn)))
    assert reported == [("Namespace/gm0344: NetworkPolicy: namespace gm0344 has no default-deny for ingress and "
                         "egress; add a NetworkPolicy with podSelector: {}, policyTypes ['Ingress', 'Egress'] "
                         "and no rules", "urn:kubernetes:core/v1:Namespace::gm0344")]
