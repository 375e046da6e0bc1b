"""The sandbox cluster behaves as the product's real deploys need (awaits of pulumi-kubernetes).

The real node is Ready; a Deployment of a real process (the stand-in image serving HTTP) becomes
Available; its Service gets ready endpoints; an Ingress gets status.loadBalancer.ingress; a PVC
binds from the static pool; Pod Security Admission refuses a privileged pod in a `restricted`
namespace. Needs the sandbox running (tools/test).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from cgkit import node_manifests as nm
from cgkit import sandbox, sandbox_images

pytestmark = pytest.mark.infra
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 90  # upper bound for each wait; normally seconds


@pytest.fixture(scope="module")
def api() -> client.ApiClient:
    assert sandbox.is_running(ROOT), "the sandbox is not running: run `cgkit sandbox up`"
    return kube_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path(ROOT)))


@pytest.fixture(scope="module")
def namespace(api) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = "infra-" + secrets.token_hex(3)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def wait_for(what: str, check: Callable[[], object]) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"{what} not reached within {WAIT_S}s")


def test_the_real_node_is_ready(api) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    ready = {n.metadata.name for n in nodes
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])}
    assert nm.NODE_NAME in ready


def test_deployment_service_ingress_converge(api, namespace) -> None:
    labels = {"app": "web"}
    client.AppsV1Api(api).create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": sandbox_images.ref("standin"),
                                     "command": ["python3", "-m", "http.server", "8080"],
                                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                                     "ports": [{"containerPort": 8080}]}]}}}})
    client.CoreV1Api(api).create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})
    client.NetworkingV1Api(api).create_namespaced_ingress(namespace, {
        "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "web.sandbox.test", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})

    def available():
        d = client.AppsV1Api(api).read_namespaced_deployment("web", namespace)
        return any(c.type == "Available" and c.status == "True" for c in d.status.conditions or [])

    def endpoints_ready():
        slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web").items
        return sum(1 for s in slices for e in s.endpoints or [] if e.conditions.ready) >= 2

    def ingress_address():
        ing = client.NetworkingV1Api(api).read_namespaced_ingress("web", namespace)
        return ing.status.load_balancer.ingress

    wait_for("Deployment Available", available)
    wait_for("Service with 2 ready endpoints", endpoints_ready)
    assert wait_for("Ingress status.loadBalancer.ingress", ingress_address)[0].ip


def test_pvc_binds_from_the_pool(api, namespace) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "cgkit-sandbox",
                 "resources": {"requests": {"storage": "10Gi"}}}})
    wait_for("PVC Bound",
             lambda: core.read_namespaced_persistent_volume_claim("data", namespace).status.phase
             == "Bound")


def test_restricted_namespace_refuses_a_privileged_pod(api) -> None:
    core = client.CoreV1Api(api)
    name = "infra-psa-" + secrets.token_hex(3)
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    try:
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(name, {
                "metadata": {"name": "priv"},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                                         "securityContext": {"privileged": True}}]}})
        assert refused.value.status == 403 and "PodSecurity" in refused.value.body
    finally:
        core.delete_namespace(name)
