"""cgkit's municipality config becomes the policy rules' context and the pack's config file."""

import datetime as dt
import json
from pathlib import Path

import yaml

from cgkit import policy_context
from cgkit.config import loader, model
from policies.config import config_section, context_from_config, policy_from_config, waivers_from_config
from policies.model import Enforcement
from policies.registry import rule_ids

ROOT = Path(__file__).resolve().parents[2]


def utrecht(waivers=(), policy=None):
    env_data = yaml.safe_load((ROOT / "environments/sandbox/environment.yaml").read_text())
    if policy is not None:
        env_data["policy"] = policy
    env = model.EnvironmentFile.model_validate(env_data)
    data = yaml.safe_load((ROOT / "environments/sandbox/municipalities/gm0344.yaml").read_text())
    data["waivers"] = list(waivers)
    return loader.merge("sandbox", env, model.MunicipalityFile.model_validate(data))


WAIVER = {"rule": "CGK-POD-011", "reason": "static files are written at start-up", "approved_by": "CISO Utrecht",
          "expires": dt.date(2027, 6, 30)}


def test_the_context_carries_code_domain_namespace_and_the_environments_registries():
    cfg = utrecht()
    ctx = policy_context.context_of(cfg)
    assert (ctx.gemeente_code, ctx.domain, ctx.tenant_namespace) == ("GM0344", cfg.domain, "gm0344")
    assert ctx.allowed_registries == tuple(cfg.environment.images.allowed_registries)


def test_waivers_keep_their_four_fields():
    [waiver] = utrecht([WAIVER]).waivers
    assert waiver.as_dict() == {**WAIVER, "expires": "2027-06-30"}


def test_the_pack_config_file_round_trips_and_makes_waived_rules_advisory(tmp_path):
    cfg = utrecht([{**WAIVER, "rule": "CGK-POD-007"}])
    path = policy_context.write_pack_config(policy_context.context_of(cfg), cfg.waivers,
                                            tmp_path / "pack" / "sandbox.gm0344.json", cfg.environment.policy)
    document = json.loads(path.read_text())
    assert list(document) == rule_ids()
    assert document["CGK-POD-007"]["enforcementLevel"] == "advisory"
    assert document["CGK-POD-001"]["enforcementLevel"] == "mandatory"
    section = config_section(document, rule_ids())
    assert context_from_config(section) == policy_context.context_of(cfg)
    assert waivers_from_config(section) == cfg.waivers
    assert policy_from_config(section) == cfg.environment.policy


def test_the_environments_advisory_enforcement_reaches_the_pack_config(tmp_path):
    cfg = utrecht(policy={"enforcement": "advisory"})
    path = policy_context.write_pack_config(policy_context.context_of(cfg), cfg.waivers,
                                            tmp_path / "sandbox.gm0344.json", cfg.environment.policy)
    document = json.loads(path.read_text())
    assert document["CGK-POD-001"]["enforcementLevel"] == "advisory"
    assert policy_from_config(config_section(document, rule_ids())).level is Enforcement.ADVISORY


def test_an_environment_without_a_policy_section_is_mandatory():
    env = model.EnvironmentFile.model_validate(yaml.safe_load((ROOT / "environments/sandbox/environment.yaml").read_text()))
    assert env.model_copy(update={"policy": model.PolicySettings()}) == env  # the sandbox says what the default is
    assert model.PolicySettings().level is Enforcement.MANDATORY and model.PolicySettings().max_waiver_days == 180
