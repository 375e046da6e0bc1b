"""The pack as a process: start policies/__main__.py the way the engine does and talk the Analyzer
gRPC protocol to it (GetAnalyzerInfo, Analyze). This proves the entry point, the imports and the
wiring; the Pulumi CLI itself (plugin discovery, PulumiPolicy.yaml's virtualenv) is the integration
test's job.
"""

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies import cases
from policies.registry import rule_ids

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def analyzer():
    proc = subprocess.Popen([sys.executable, "__main__.py"], cwd=PACK_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.kill()
        proc.wait()


def test_the_pack_serves_every_rule_as_a_policy(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=20)
    assert info.name == "cgkit"
    assert [p.name for p in info.policies] == rule_ids()


def test_the_pack_flags_a_privileged_pod(analyzer):
    pod = yaml.safe_load((cases.RULES_DIR / "pod_security/cases/CGK-POD-001/fail-pod.yaml").read_text())
    props = struct_pb2.Struct()
    props.update(pod)
    response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
        type="kubernetes:core/v1:Pod", properties=props, urn="urn:pulumi:sandbox.gm0344::cgkit::kubernetes:core/v1:Pod::web",
        name="web"), timeout=20)
    flagged = {d.policyName for d in response.diagnostics}
    assert "CGK-POD-001" in flagged
    assert "CGK-RBAC-001" not in flagged
    [diag] = [d for d in response.diagnostics if d.policyName == "CGK-POD-001"]
    assert "spec.containers[0].securityContext.privileged" in diag.message
