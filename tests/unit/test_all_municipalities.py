"""The municipality program under mocks for all 342 municipalities: invariants over everything declared.

Files are generated with `onboard` (the minimal file: code and domain, everything else default)
in a scratch environment.
Every one of the 342 is rendered, spread over one process per core (cgkit.render.render_many).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from cgkit.config import loader
from cgkit.gemeenten import all_gemeenten
from cgkit.onboard import onboard
from cgkit.policy_context import context_of
from cgkit.render import render_many
from policies.evaluate import evaluate
from policies.podspec import pod_spec  # the policies' locator: one definition of "a workload's pod spec"

DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory, project_root: Path) -> dict[str, tuple]:
    """CBS code -> (its MunicipalityConfig, every manifest the program declares for it)."""
    root = tmp_path_factory.mktemp("fleet")
    (root / "Pulumi.yaml").write_text((project_root / "Pulumi.yaml").read_text())
    env_dir = root / "environments" / "sandbox"
    (env_dir / "municipalities").mkdir(parents=True)
    (env_dir / "environment.yaml").write_text((project_root / "environments/sandbox/environment.yaml").read_text())
    configs = {}
    for code in all_gemeenten():
        onboard(root, "sandbox", code)
        configs[code] = loader.load_municipality(root, "sandbox", code)
    rendered = render_many(list(configs.values()))
    return {code: (cfg, manifests) for (code, cfg), manifests in zip(configs.items(), rendered, strict=True)}


@pytest.fixture(scope="module")
def fleet(tenants) -> dict[str, list[dict]]:
    """CBS code -> every manifest the program declares for it."""
    return {code: manifests for code, (_, manifests) in tenants.items()}


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def test_every_municipality_gets_exactly_one_namespace_of_its_own(fleet) -> None:
    namespaces = Counter()
    for code, manifests in fleet.items():
        own = of_kind(manifests, "Namespace")
        assert [n["metadata"]["name"] for n in own] == [code.lower()], code
        namespaces[code.lower()] += 1
        assert {m["metadata"].get("namespace", code.lower()) for m in manifests} == {code.lower()}, code
    assert len(namespaces) == 342 and max(namespaces.values()) == 1


def test_every_host_and_name_is_a_valid_dns_name(fleet) -> None:
    for code, manifests in fleet.items():
        for ingress in of_kind(manifests, "Ingress"):
            for rule in ingress["spec"]["rules"]:
                assert DNS_NAME.match(rule["host"]), (code, rule["host"])
        for manifest in manifests:
            assert DNS_NAME.match(manifest["metadata"]["name"]), (code, manifest["kind"], manifest["metadata"]["name"])


def test_every_workload_has_requests_limits_and_the_restricted_context(fleet) -> None:
    for code, manifests in fleet.items():
        workloads = [(m, located.spec) for m in manifests if (located := pod_spec(m)) is not None]
        assert workloads, code
        for manifest, spec in workloads:
            where = (code, manifest["kind"], manifest["metadata"]["name"])
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert spec.get("automountServiceAccountToken") is False, where
            for container in spec["containers"] + spec.get("initContainers", []):
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), where
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["capabilities"]["drop"] == ["ALL"], where


def test_every_namespace_denies_ingress_and_egress_by_default(fleet) -> None:
    for code, manifests in fleet.items():
        deny = [p for p in of_kind(manifests, "NetworkPolicy")
                if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert len(deny) == 1, code


def test_every_object_of_every_municipality_passes_every_mandatory_rule(tenants) -> None:
    for code, (cfg, manifests) in tenants.items():
        blocking = [f for f in evaluate(manifests, context_of(cfg)) if f.enforcement.value == "mandatory"]
        assert not blocking, (code, [(f.rule_id, f.subject.kind, f.subject.name, f.message) for f in blocking][:5])
