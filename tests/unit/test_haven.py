"""Haven verdicts from cluster facts, without a cluster: each check passes only on evidence, fails on
its counter-evidence, and is "not verifiable" where the facts cannot tell; the catalog is checked
against the verdict functions; the output formats carry every check. (The live run against the
sandbox is tests/integration/test_haven_live.py.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus
from cgkit.haven import catalog, report
from cgkit.haven.facts import ClusterFacts, NodeFacts, Workload
from cgkit.haven.verdicts import PROBES, State


def node(name: str, zone: str | None = "a", fake: bool = False, ready: bool = True, control_plane: bool = False,
         os_image: str = "Debian GNU/Linux 12 (bookworm)", address: str = "10.0.0.1",
         lsms: tuple[str, ...] | None = None) -> NodeFacts:
    return NodeFacts(name, fake, control_plane, ready, zone, os_image, (("InternalIP", address),), lsms)


HA = ClusterFacts(
    nodes=(node("w1", "a", lsms=("capability", "apparmor")), node("w2", "b", lsms=("selinux",)),
           node("w3", "c", os_image="Flatcar Container Linux 4081"),
           node("cp1", "a", control_plane=True, os_image="Talos (v1.9)")),
    api_server_addresses=("10.0.0.11", "10.0.0.12", "10.0.0.13"),
    server_version="v1.36.2", latest_minor=37, latest_error="from https://proxy.golang.org/k8s.io/api/@v/list",
    cluster_admin=True, rbac_served=True, anonymous_may_list_secrets=False, basic_auth_status=401,
    rwx_volumes=(), node_local_rwx=0, provisioners=("nfs.csi.k8s.io",),
    crds=frozenset({"certificates.cert-manager.io"}),
    deployments=(Workload("cert-manager", "cert-manager", ("quay.io/jetstack/cert-manager-controller:v1.16",), True),),
    daemonsets=(Workload("logging", "fluent-bit", ("fluent/fluent-bit:3.2",), True),),
    apiservices={"v1beta1.metrics.k8s.io": True},
)
SANDBOX = dataclasses.replace(
    HA, nodes=(node("cgkit-real", "zone-a", address="10.244.0.1", lsms=("lockdown", "capability", "landlock", "bpf")),),
    api_server_addresses=("10.244.0.1",), server_version="v1.35.4", provisioners=(), node_local_rwx=100, crds=frozenset(),
    deployments=(), daemonsets=(), apiservices={"v1.apps": True})


def verdict(probe: str, facts: ClusterFacts):
    return PROBES[probe](facts)


@pytest.mark.parametrize("probe", ["cluster_admin", "zones", "control_plane", "workers", "node_hardening",
                                   "private_networking", "version", "rbac", "basic_auth", "read_write_many",
                                   "certificates", "log_aggregation", "metrics_server"])
def test_a_highly_available_hardened_cluster_passes_every_check_cgkit_can_verify(probe: str) -> None:
    assert verdict(probe, HA).state is State.PASSED, verdict(probe, HA)


@pytest.mark.parametrize(("probe", "evidence"), [
    ("zones", "1 zone(s) over 1 real node(s): zone-a"),
    ("control_plane", "1 API server(s) behind default/kubernetes: 10.244.0.1"),
    ("workers", "1 Ready worker node(s): cgkit-real"),
    ("node_hardening", "cgkit-real: active security modules lockdown, capability, landlock, bpf"),
    ("read_write_many", "ReadWriteMany volumes: none (100 on hostPath/local storage do not count); "
                        "StorageClass provisioners: none"),
    ("certificates", "CRD certificates.cert-manager.io absent; cert-manager Deployments available: none"),
    ("log_aggregation", "log agent DaemonSets Ready on every node: none"),
    ("metrics_server", "APIService v1beta1.metrics.k8s.io absent"),
])
def test_the_one_node_sandbox_fails_what_it_lacks_with_the_evidence(probe: str, evidence: str) -> None:
    assert verdict(probe, SANDBOX).state is State.FAILED
    assert verdict(probe, SANDBOX).evidence == evidence


def test_kwok_nodes_never_count_as_workers_or_zones() -> None:
    fakes = dataclasses.replace(SANDBOX, nodes=SANDBOX.nodes + tuple(
        node(f"kwok-{i}", "zone-b", fake=True) for i in range(5)))
    assert verdict("workers", fakes).state is State.FAILED
    assert verdict("zones", fakes).state is State.FAILED
    assert "5 kwok node(s) not counted" in verdict("workers", fakes).evidence
    assert verdict("node_hardening", fakes).state is State.FAILED  # the real node's kernel decides
    unknown_real = dataclasses.replace(fakes, nodes=(node("cgkit-real", lsms=("selinux",)), *fakes.nodes[1:]))
    hardening = verdict("node_hardening", unknown_real)
    assert hardening.state is State.NOT_VERIFIABLE and "a kwok node has no kernel" in hardening.evidence


def test_a_node_whose_kernel_cannot_be_read_is_not_verifiable_never_passed() -> None:
    remote = dataclasses.replace(HA, nodes=(node("w1", lsms=None),))
    assert verdict("node_hardening", remote).state is State.NOT_VERIFIABLE


@pytest.mark.parametrize(("server", "state"), [("v1.34.0", State.PASSED), ("v1.33.9", State.FAILED),
                                               ("v1.37.2", State.PASSED)])
def test_the_version_may_be_at_most_three_minors_behind_the_newest_release(server: str, state: State) -> None:
    assert verdict("version", dataclasses.replace(HA, server_version=server)).state is state


def test_an_unknown_newest_release_leaves_the_version_not_verifiable() -> None:
    offline = dataclasses.replace(HA, latest_minor=None, latest_error="https://proxy.golang.org did not answer")
    result = verdict("version", offline)
    assert result.state is State.NOT_VERIFIABLE and "did not answer" in result.evidence


@pytest.mark.parametrize(("changes", "probe"), [
    ({"anonymous_may_list_secrets": True}, "rbac"),
    ({"rbac_served": False}, "rbac"),
    ({"basic_auth_status": 200}, "basic_auth"),
    ({"basic_auth_status": 403}, "basic_auth"),
    ({"cluster_admin": False}, "cluster_admin"),
    ({"nodes": (node("w1", address="8.8.8.8"),)}, "private_networking"),
    ({"daemonsets": (Workload("logging", "fluent-bit", ("fluent/fluent-bit:3.2",), False),)}, "log_aggregation"),
    ({"deployments": ()}, "certificates"),
    ({"apiservices": {"v1beta1.metrics.k8s.io": False}}, "metrics_server"),
])
def test_each_counter_evidence_fails_its_check(changes: dict, probe: str) -> None:
    assert verdict(probe, dataclasses.replace(HA, **changes)).state is State.FAILED


def test_a_shared_address_range_counts_as_private_and_a_host_name_proves_nothing() -> None:
    cgnat = dataclasses.replace(HA, nodes=(node("w1", address="100.64.3.4"),))
    assert verdict("private_networking", cgnat).state is State.PASSED


def test_no_answer_to_the_basic_auth_probe_is_not_verifiable() -> None:
    silent = dataclasses.replace(HA, basic_auth_status="no answer: timed out")
    assert verdict("basic_auth", silent).state is State.NOT_VERIFIABLE


def test_the_checkers_self_tests_and_conformance_are_never_passed() -> None:
    for check in catalog.load():
        if check.probe in ("about_the_checker", "conformance"):
            assert PROBES[check.probe](HA).state is State.NOT_VERIFIABLE, check.id


def test_the_catalog_has_the_sixteen_mandatory_checks_each_with_a_known_probe() -> None:
    checks = catalog.load()
    assert [c.id for c in checks] == [f"HAVEN-{i:02d}" for i in range(1, 17)]
    assert {c.probe for c in checks} == set(PROBES)  # every verdict function is used


@pytest.mark.parametrize(("entry", "message"), [
    ("- {id: X-1, category: C, title: T, probe: nope, how: H}", r"checks\[0\] \(X-1\): unknown probe 'nope'"),
    ("- {id: X-1, category: C, title: T, how: H}", r"checks\[0\]: has [^;]*; a check has exactly the fields id, "
                                                   "category, title, probe, how"),
    ("- {id: X-1, category: C, title: T, probe: zones, how: H}\n  - {id: X-1, category: C, title: T, probe: zones, how: H}",
     r"checks\[1\]: id X-1 repeats"),
])
def test_a_broken_catalog_names_the_file_and_entry(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "checks.yaml"
    path.write_text(f"checks:\n  {entry}\n")
    with pytest.raises(ValueError, match=message) as raised:
        catalog.load(path)
    assert str(path) in str(raised.value)


def test_text_json_and_sarif_carry_every_check_and_its_state() -> None:
    results = report.judge(SANDBOX)
    lines = report.text(results, "https://10.244.0.1:6443").splitlines()
    assert lines[0] == "Haven checks of https://10.244.0.1:6443"
    assert lines[3] == "HAVEN-03 failed          Multiple availability zones in use: 1 zone(s) over 1 real node(s): zone-a"
    assert lines[-1] == "5 passed, 8 failed, 3 not verifiable"
    data = json.loads(report.as_json(results, "s"))
    assert data["summary"] == {"passed": 5, "failed": 8, "not verifiable": 3}
    assert [c["state"] for c in data["checks"]][:3] == ["not verifiable", "passed", "failed"]
    sarif = json.loads(report.sarif(results, "s"))["runs"][0]
    assert [r["id"] for r in sarif["tool"]["driver"]["rules"]] == [c["id"] for c in data["checks"]]
    assert [(r["kind"], r["level"]) for r in sarif["results"][:3]] == [("open", "none"), ("pass", "none"),
                                                                       ("fail", "error")]
    assert len(report.failed(results)) == 8


def test_haven_check_without_a_running_sandbox_says_how_to_start_it(scratch_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CGKIT_SANDBOX_DIR", str(scratch_root / "no-sandbox"))
    assert main(["haven", "check", "--env", "sandbox"]) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cgkit sandbox up" in err and "Traceback" not in err


def test_haven_check_of_an_unknown_environment_names_the_valid_ones(scratch_root: Path, capsys) -> None:
    assert main(["haven", "check", "--env", "nowhere"]) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert "nowhere" in err and "sandbox" in err and "Traceback" not in err


def test_a_node_local_volume_that_declares_read_write_many_does_not_count() -> None:
    from kubernetes import client
    from cgkit.haven.facts import _rwx_volumes

    def pv(name: str, **source) -> client.V1PersistentVolume:
        return client.V1PersistentVolume(metadata=client.V1ObjectMeta(name=name), spec=client.V1PersistentVolumeSpec(
            access_modes=["ReadWriteOnce", "ReadWriteMany"], **source))
    found = _rwx_volumes([pv("disk", host_path=client.V1HostPathVolumeSource(path="/x")),
                          pv("share", nfs=client.V1NFSVolumeSource(server="nfs.local", path="/export"))])
    assert found == {"rwx_volumes": ("share",), "node_local_rwx": 1}
    shared = dataclasses.replace(SANDBOX, **found)
    assert verdict("read_write_many", shared).state is State.PASSED
    assert verdict("read_write_many", dataclasses.replace(shared, rwx_volumes=())).state is State.FAILED
