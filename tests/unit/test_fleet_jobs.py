"""The in-cluster fleet without a cluster: its manifests pass the policy pack, the runner's role is
what the tenant program needs and no more, the backend URL pods see, the runner-pod lock rule, and
the wave runner's bookkeeping over a fake API (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from cgkit import locks
from cgkit.config import loader
from cgkit.fleet import in_cluster as ic
from cgkit.fleet.scheduler import Status, run_waves
from cgkit.fleet.selection import WavePlan
from cgkit.project import find_root
from cgkit.render import render_municipality
from policies.evaluate import evaluate
from policies.model import Context

ROOT = find_root()
RUNNER = ic.Runner(verb="up", env="sandbox", image="cgkit.sandbox/runner:0123456789ab", parallel=2,
                   options={"refresh": True, "skip_policy": False}, aws_profile="cgkit-sandbox",
                   backend_url="s3://cgkit-state?endpoint=http://10.244.0.1:9870&use_path_style=true",
                   egress=(("192.0.2.10", 6443), ("10.244.0.1", 9870)))


@pytest.fixture(scope="module")
def tenant_objects() -> list[dict]:
    return render_municipality(loader.load_municipality(ROOT, "sandbox", "GM0344"))


@pytest.fixture(scope="module")
def manifests(tenant_objects) -> list[dict]:
    return ic.base_manifests(RUNNER, ic.runner_role(tenant_objects)) + ic.wave_manifests(
        RUNNER, "up-0a1b2c-w0", ["GM0344", "GM0153"], {ic.PASSPHRASE_KEY: b"not-a-real-one",
                                                         "Pulumi.sandbox.gm0344.yaml": b"config: {}\n"})


def test_the_runner_manifests_pass_the_policy_pack(manifests) -> None:
    findings = evaluate(manifests, Context(allowed_registries=("cgkit.sandbox",)))
    assert [f"{f.rule_id} {f.subject.kind}/{f.subject.name}: {f.message}" for f in findings] == []


def test_the_policy_pack_would_catch_a_runner_pod_that_automounts_its_token(manifests) -> None:
    job = json.loads(json.dumps(next(m for m in manifests if m["kind"] == "Job")))
    job["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    assert "CGK-WKL-003" in {f.rule_id for f in evaluate([job], Context(allowed_registries=("cgkit.sandbox",)))}


def test_the_job_is_indexed_with_one_completion_per_stack_and_no_retry(manifests) -> None:
    job = next(m for m in manifests if m["kind"] == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimitPerIndex"]) == (2, 2, 0)
    codes = next(m for m in manifests if m["kind"] == "ConfigMap")["data"]["codes"]
    assert codes.split() == ["GM0344", "GM0153"]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PULUMI_BACKEND_URL"] == RUNNER.backend_url and env["CGKIT_IN_CLUSTER"] == "1"
    assert "not-a-real-one" not in json.dumps(job), "the passphrase travels in the Secret only"


def test_the_namespace_enforces_restricted_and_the_runner_may_reach_only_the_api_and_the_store(manifests) -> None:
    namespace = next(m for m in manifests if m["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policies = {m["metadata"]["name"]: m["spec"] for m in manifests if m["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allowed = {(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in policies["runner-egress"]["egress"]}
    assert allowed == {("192.0.2.10/32", 6443), ("10.244.0.1/32", 9870)}


def test_the_runner_role_covers_every_kind_the_tenant_declares_and_every_rule_of_its_roles(tenant_objects) -> None:
    role = ic.runner_role(tenant_objects)
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for obj in tenant_objects:
        group = obj["apiVersion"].rpartition("/")[0]
        resource = ic._plural(obj["kind"])
        assert {(group, resource, verb) for verb in ic.ENGINE_VERBS} <= granted, obj["kind"]
    for tenant_role in (o for o in tenant_objects if o["kind"] == "Role"):
        for rule in tenant_role["rules"]:
            wanted = {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
            assert wanted <= granted, "Kubernetes refuses to let a subject create a Role it does not hold"
    assert not any("*" in rule["verbs"] + rule["resources"] + rule["apiGroups"] for rule in role["rules"])
    assert ("rbac.authorization.k8s.io", "clusterrolebindings", "create") not in granted
    assert ("", "nodes", "get") not in granted


@pytest.mark.parametrize(("kind", "resource"), [("NetworkPolicy", "networkpolicies"), ("Ingress", "ingresses"),
                                                ("PodDisruptionBudget", "poddisruptionbudgets"), ("Service", "services")])
def test_kinds_become_their_resource_names(kind: str, resource: str) -> None:
    assert ic._plural(kind) == resource


def test_pods_reach_the_sandbox_store_on_the_bridge_and_a_team_bucket_unchanged() -> None:
    local = "s3://cgkit-state?endpoint=http://127.0.0.1:9870&use_path_style=true&region=us-east-1"
    assert ic.pod_backend_url(local, sandbox=True, node_ip="10.244.0.1") == \
        "s3://cgkit-state?endpoint=http://10.244.0.1:9870&use_path_style=true&region=us-east-1"
    team = "s3://team-state?endpoint=https://s3.example.nl&use_path_style=true"
    assert ic.pod_backend_url(team, sandbox=True, node_ip="10.244.0.1") == team
    assert ic.endpoint_of(team) == ("s3.example.nl", 443)
    with pytest.raises(ic.InClusterError, match="shared state backend"):
        ic.pod_backend_url("file:///work/state", sandbox=True, node_ip="10.244.0.1")


def test_a_wave_whose_stack_configs_exceed_a_secret_is_refused() -> None:
    with pytest.raises(ic.InClusterError, match="more than the") as refused:
        ic.wave_manifests(RUNNER, "up-0a1b2c-w0", ["GM0344"], {"Pulumi.x.yaml": b"x" * (ic.SECRET_LIMIT_BYTES + 1)})
    assert "--shard" in refused.value.hint


def _lock(hostname: str) -> locks.Lock:
    from datetime import datetime, timezone

    return locks.Lock("sandbox.gm0344", ".pulumi/locks/x/cgkit/sandbox.gm0344/1.json", 7, hostname, "app",
                      datetime.now(timezone.utc))


@pytest.mark.parametrize(("phases", "gone"), [([], True), (["Failed"], True), (["Succeeded"], True),
                                              (["Running"], False), (["Pending"], False), (["Failed", "Running"], False)])
def test_a_runner_pods_lock_is_gone_only_when_no_pod_of_its_index_runs(phases: list[str], gone: bool) -> None:
    asked = []
    verdict, why = locks.holder_gone(_lock("up-0a1b2c-w0-3"), hostname="laptop",
                                     runner_pods=lambda host: asked.append(host) or phases)
    assert (verdict, asked) == (gone, ["up-0a1b2c-w0-3"]), why


def test_a_lock_of_another_machine_is_kept_even_with_a_cluster_to_ask() -> None:
    verdict, why = locks.holder_gone(_lock("ci-runner-7"), hostname="laptop",
                                     runner_pods=lambda host: None if not ic.names_runner_pod(host) else [])
    assert verdict is False and "another machine" in why


def test_only_runner_pod_hostnames_are_taken_for_pods() -> None:
    assert ic.names_runner_pod("up-0a1b2c-w0-12") and ic.names_runner_pod("destroy-ffffff-w3-0")
    assert not any(ic.names_runner_pod(h) for h in ("up-0a1b2c-w0", "laptop", "up-0a1b2-w0-1", "rm-0a1b2c-w0-1"))


class _FakeApi:
    """Pods that appear running, then end with the given termination messages; records calls."""

    def __init__(self, outcomes: dict[int, tuple[str, dict | None]]):
        self.outcomes, self.polls, self.applied, self.deleted = outcomes, 0, [], []

    def list_namespaced_pod(self, namespace: str, label_selector: str):
        self.polls += 1
        items = []
        for index, (phase, message) in self.outcomes.items():
            ended = self.polls > 1
            terminated = SimpleNamespace(message=json.dumps(message) if message else "", reason="OOMKilled")
            items.append(SimpleNamespace(
                metadata=SimpleNamespace(name=f"pod-{index}",
                                         annotations={"batch.kubernetes.io/job-completion-index": str(index)}),
                status=SimpleNamespace(phase=phase if ended else "Running", start_time=None, reason=None,
                                       container_statuses=[SimpleNamespace(state=SimpleNamespace(
                                           terminated=terminated if ended else None))])))
        return SimpleNamespace(items=items)

    def read_namespaced_job_status(self, name: str, namespace: str):
        return SimpleNamespace(status=SimpleNamespace(conditions=None))

    def read_namespaced_pod_log(self, name: str, namespace: str, _preload_content: bool):
        return SimpleNamespace(data=f"log of {name}\n".encode())

    def delete_namespaced_job(self, name, namespace, propagation_policy):
        self.deleted.append(("Job", name))

    def delete_namespaced_config_map(self, name, namespace):
        self.deleted.append(("ConfigMap", name))

    def delete_namespaced_secret(self, name, namespace):
        self.deleted.append(("Secret", name))


def test_the_wave_runner_records_each_pods_result_and_log_and_deletes_the_wave(tmp_path: Path) -> None:
    from cgkit.errors import ConfigError

    api = _FakeApi({0: ("Succeeded", {"status": "succeeded", "changes": {"create": 3}, "duration_s": 4.5}),
                    1: ("Failed", {"status": "failed", "error": "[mandatory] CGK-NET-001", "error_kind": "policy-violation"}),
                    2: ("Failed", None)})
    applied: list[dict] = []
    cluster = ic.Cluster(core=api, batch=api, apply=applied.extend)

    def prepare(code: str) -> dict[str, bytes]:
        if code == "GM0014":
            raise ConfigError([])
        return {f"Pulumi.sandbox.{code.lower()}.yaml": b"x"}

    runner = ic.wave_runner(cluster, RUNNER, "0a1b2c", {ic.PASSPHRASE_KEY: b"p"}, prepare,
                            lambda code: tmp_path / f"{code}.log", poll_s=0)
    plans = [WavePlan("canary", ["GM0344", "GM0153", "GM0014", "GM0363"], 1.0)]
    run = run_waves(plans, runner)
    by_code = {r.code: r for r in run.results}
    assert by_code["GM0344"].status == Status.SUCCEEDED and by_code["GM0344"].changes == {"create": 3}
    assert (by_code["GM0153"].status, by_code["GM0153"].error_kind) == (Status.FAILED, "policy-violation")
    assert by_code["GM0014"].status == Status.FAILED and by_code["GM0014"].error_kind == "invalid-config"
    assert by_code["GM0363"].error_kind == "runner-pod-failed" and "OOMKilled" in by_code["GM0363"].error
    job = next(o for o in applied if o["kind"] == "Job")
    assert job["spec"]["completions"] == 3, "a stack that failed its preparation gets no pod"
    assert (tmp_path / "GM0344.log").read_text() == "log of pod-0\n"
    assert sorted(kind for kind, _ in api.deleted) == ["ConfigMap", "Job", "Secret"]


class _VanishingApi(_FakeApi):
    """Index 1's pod never shows (evicted and deleted); the Job then ends Failed."""

    def read_namespaced_job_status(self, name: str, namespace: str):
        condition = SimpleNamespace(type="Failed", status="True", reason="FailedIndexes")
        return SimpleNamespace(status=SimpleNamespace(conditions=[condition] if self.polls > 2 else None))


def test_an_index_whose_pod_vanished_fails_once_the_job_has_ended(tmp_path: Path) -> None:
    api = _VanishingApi({0: ("Succeeded", {"status": "succeeded", "changes": {}, "duration_s": 1.0})})
    cluster = ic.Cluster(core=api, batch=api, apply=lambda objects: None)
    runner = ic.wave_runner(cluster, RUNNER, "0a1b2c", {}, lambda code: {}, lambda code: tmp_path / code, poll_s=0)
    run = run_waves([WavePlan("rest", ["GM0344", "GM0153"], 1.0)], runner)
    assert [(r.code, r.status) for r in run.results] == [("GM0344", Status.SUCCEEDED), ("GM0153", Status.FAILED)]
    assert "FailedIndexes" in run.results[1].error
