"""The CrossGuard pack under the real engine.

* `pulumi policy analyze --file` runs the pack against a `pulumi stack export` document (no providers,
  no backend): the CLI finds PulumiPolicy.yaml, starts the pack in the project's .venv through the
  Python language host, runs resource and stack policies, and blocks on a mandatory violation.
* `pulumi preview --policy-pack` on a small program whose Kubernetes provider renders YAML to a
  directory instead of calling a cluster: the resource policies see real provider inputs
  (auto-named, camelCase) and block the preview.
* The same through the Automation API against the sandbox cluster (needs `cgkit sandbox up`).

Deploying through `cgkit preview/up` with the pack is covered by the municipality deploy test.

Needs the toolchain (tools/setup: pulumi and the Python language host that honours the pack's
``virtualenv``); only the last test needs the sandbox cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cgkit import engine
from cgkit.policy_context import write_pack_config
from policies.model import Context

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TENANT = ROOT / "tests" / "policy" / "tenants" / "gm0344.yaml"
STACK = "urn:pulumi:sandbox.gm0344::cgkit::pulumi:pulumi:Stack::cgkit-sandbox.gm0344"
PROVIDER = "urn:pulumi:sandbox.gm0344::cgkit::pulumi:providers:kubernetes::default"
PROVIDER_ID = "00000000-0000-0000-0000-000000000000"
TOKENS = {"Namespace": "core/v1", "ResourceQuota": "core/v1", "LimitRange": "core/v1", "ServiceAccount": "core/v1",
          "ConfigMap": "core/v1", "Secret": "core/v1", "Service": "core/v1", "Deployment": "apps/v1",
          "StatefulSet": "apps/v1", "NetworkPolicy": "networking.k8s.io/v1", "Ingress": "networking.k8s.io/v1",
          "PodDisruptionBudget": "policy/v1", "RoleBinding": "rbac.authorization.k8s.io/v1"}


def export(objects: list[dict]) -> dict:
    """A `pulumi stack export` (version 3) document declaring ``objects`` as kubernetes resources."""
    def resource(obj):
        token = f"kubernetes:{TOKENS[obj['kind']]}:{obj['kind']}"
        name = obj["metadata"]["name"]
        return {"urn": f"urn:pulumi:sandbox.gm0344::cgkit::{token}::{name}", "custom": True, "id": name,
                "type": token, "inputs": obj, "outputs": obj, "parent": STACK, "provider": f"{PROVIDER}::{PROVIDER_ID}"}
    return {"version": 3, "deployment": {
        "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "", "version": "v3"},
        "resources": [{"urn": STACK, "custom": False, "type": "pulumi:pulumi:Stack"},
                      {"urn": PROVIDER, "custom": True, "id": PROVIDER_ID, "type": "pulumi:providers:kubernetes",
                       "inputs": {}, "outputs": {}}] + [resource(o) for o in objects]}}


def analyze(tmp_path: Path, objects: list[dict]) -> subprocess.CompletedProcess:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(export(objects)))
    config = write_pack_config(Context(gemeente_code="GM0344", domain="utrecht.sandbox.cgkit.test",
                                       allowed_registries=("docker.io",)), [], tmp_path / "pack.json")
    env = {**os.environ, **engine.engine_env(engine.EngineSettings(root=ROOT))}
    return subprocess.run(["pulumi", "policy", "analyze", "--non-interactive", "--file", str(state),
                           "--policy-pack", str(ROOT / "policies"), "--policy-pack-config", str(config)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def tenant() -> list[dict]:
    return [d for d in yaml.safe_load_all(TENANT.read_text()) if d]


def test_the_reference_tenant_passes_the_pack(tmp_path):
    result = analyze(tmp_path, tenant())
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_privileged_container_is_a_mandatory_violation(tmp_path):
    objects = tenant()
    web = next(o for o in objects if o["metadata"]["name"] == "openzaak-web")
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    result = analyze(tmp_path, objects)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "CGK-POD-001" in output and "spec.template.spec.containers[0].securityContext.privileged" in output


PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

provider = k8s.Provider("render", render_yaml_to_directory="rendered")
privileged = pulumi.Config().get_bool("privileged") or False
# as the tenant baseline does: the namespace comes from the Namespace resource's output
ns = k8s.core.v1.Namespace("apps", metadata={"name": "packcheck"}, opts=pulumi.ResourceOptions(provider=provider))
k8s.core.v1.Pod("web", metadata={"namespace": ns.metadata.name, "labels": {
        "app.kubernetes.io/name": "openzaak", "app.kubernetes.io/part-of": "common-ground",
        "cgkit.io/gemeente-code": "GM0344"}},
    spec={"automountServiceAccountToken": False, "enableServiceLinks": False,
          "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
          "containers": [{"name": "web", "image": "docker.io/openzaak/open-zaak:1.15.0",
                          "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                              "capabilities": {"drop": ["ALL"]}, "privileged": privileged},
                          "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                        "limits": {"cpu": "1", "memory": "1Gi"}},
                          "livenessProbe": {"tcpSocket": {"port": 8000}},
                          "readinessProbe": {"tcpSocket": {"port": 8000}}}]},
    opts=pulumi.ResourceOptions(provider=provider))
"""


def test_preview_with_the_pack_blocks_a_privileged_pod_a_program_declares(tmp_path):
    import sys

    (tmp_path / "Pulumi.yaml").write_text("name: packcheck\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(PROGRAM)
    (tmp_path / "state").mkdir()
    env = {**os.environ, **engine.engine_env(engine.EngineSettings(root=ROOT)),
           "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}", "PULUMI_HOME": str(tmp_path / "home"),
           "PULUMI_CONFIG_PASSPHRASE": "test"}
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the program runs in this venv

    def pulumi(*args):
        return subprocess.run(["pulumi", *args, "--non-interactive"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)

    assert pulumi("stack", "init", "dev").returncode == 0
    clean = pulumi("preview", "--policy-pack", str(ROOT / "policies"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert pulumi("config", "set", "privileged", "true").returncode == 0
    blocked = pulumi("preview", "--policy-pack", str(ROOT / "policies"))
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert "CGK-POD-001" in output and "spec.containers[0].securityContext.privileged" in output
    assert "Pod/packcheck/web-" in output  # the namespace, an output of the Namespace, is judged too


def preview_with_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pod: dict) -> tuple[bool, str]:
    """`pulumi preview --policy-pack policies` of an inline program declaring ``pod`` (in
    namespace policy-probe, which need not exist for a preview) on the sandbox; returns
    (succeeded, engine output)."""
    import pulumi_kubernetes as k8s
    from pulumi import automation as auto

    from cgkit import sandbox
    from cgkit.policy_context import platform_context
    from cgkit.config.loader import load_environment

    def program() -> None:
        k8s.core.v1.Pod("probe", metadata={**pod["metadata"], "namespace": "policy-probe"}, spec=pod["spec"])

    settings = engine.EngineSettings(root=ROOT, kubeconfig=sandbox.kubeconfig_path(ROOT))
    config = write_pack_config(platform_context(load_environment(ROOT, "sandbox")), [], tmp_path / "pack.json")
    env = engine.engine_env(settings)
    monkeypatch.setenv("PATH", env["PATH"])  # the inline program's engine: this test only
    stack = auto.create_or_select_stack(
        f"policy-probe-{tmp_path.name}", project_name="cgkit-policy-probe", program=program,
        opts=auto.LocalWorkspaceOptions(work_dir=str(tmp_path), env_vars=env, pulumi_home=env["PULUMI_HOME"]))
    lines: list[str] = []
    try:
        stack.preview(on_output=lines.append, policy_packs=[str(ROOT / "policies")],
                      policy_pack_configs=[str(config)], color="never")
        return True, "\n".join(lines)
    except auto.CommandError as failed:
        return False, "\n".join(lines) + str(failed)
    finally:
        stack.workspace.remove_stack(stack.name)


CASES = ROOT / "policies" / "rules" / "pod_security" / "cases" / "CGK-POD-001"


def test_preview_with_the_pack_blocks_a_privileged_pod_and_passes_without_it(tmp_path, monkeypatch):
    # the sandbox environment allows only its own images (images.allowed_registries: [cgkit.sandbox])
    compliant = yaml.safe_load((CASES / "pass-pod.yaml").read_text().replace("docker.io/", "cgkit.sandbox/"))
    privileged = yaml.safe_load((CASES / "fail-pod.yaml").read_text().replace("docker.io/", "cgkit.sandbox/"))

    passed, output = preview_with_pack(tmp_path, monkeypatch, compliant)
    assert passed, output
    blocked, output = preview_with_pack(tmp_path, monkeypatch, privileged)
    assert not blocked, output
    assert "CGK-POD-001" in output and "mandatory" in output
