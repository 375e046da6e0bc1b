"""The Kubernetes Multi-Tenancy Benchmark, profile level 1, live on the sandbox: each check's forbidden
action is tried as GM0344's tenant admin (a user impersonated in the group its `access.admins` names)
on the sandbox's API server, and must be refused; the configuration checks read the tenant's objects.

Check ids, titles and audits: kubernetes-sigs/multi-tenancy, benchmarks/kubectl-mtb/test/benchmarks/
(the project is retired; its ids are used as published, including three that say PL1 but are level 2
in their own files: CC-TI-2, BC-NI-1, BC-CPI-2). Where a pod-level check is concerned, the admin has no
right to create Pods at all, so the request is also made as cluster admin with dryRun in the tenant's
namespace: that is what a controller would meet (the admin may patch Deployments), and Pod Security
Admission `restricted` must refuse it. The README's table lists every check with its test here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cgkit.config import loader
from cgkit.conventions import stack_name
from tests.integration.conftest import CODE, ENV, cgkit

pytestmark = pytest.mark.integration

NS = CODE.lower()
OTHER_NS = ("gm0363", "kube-system")  # another tenant's namespace (by name: RBAC decides by name) and the system's
IMPERSONATED_USER = "mtb-tenant-admin@utrecht.example"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
#: Cluster-scoped resources every authenticated user may create by Kubernetes' default RBAC
#: (system:basic-user): reviews of one's own access, which grant nothing.
SELF_REVIEWS = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"}


@pytest.fixture(scope="module")
def tenant_admin(deployed: Path, api: client.ApiClient) -> Iterator[client.ApiClient]:
    """An API client that acts as a member of GM0344's admin group (impersonation by the sandbox admin)."""
    if NS not in {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}:
        assert cgkit("up", "--env", ENV, CODE, "--yes") == 0, f"{stack_name(ENV, CODE)} is not deployed"
    group = loader.load_municipality(deployed, ENV, CODE).access.admins[0]
    configuration = copy.copy(api.configuration)
    admin = client.ApiClient(configuration, header_name="Impersonate-User", header_value=IMPERSONATED_USER)
    admin.set_default_header("Impersonate-Group", group)
    yield admin
    admin.close()


def allowed(as_client: client.ApiClient, verb: str, resource: str, group: str, namespace: str | None = None) -> bool:
    """SelfSubjectAccessReview as ``as_client``'s user: what `kubectl auth can-i` asks (the MTB audits)."""
    review = client.AuthorizationV1Api(as_client).create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
            verb=verb, resource=resource, group=group, namespace=namespace))))
    return bool(review.status.allowed)


def api_resources(api: client.ApiClient, namespaced: bool) -> list[tuple[str, str]]:
    """(group, resource) of every resource the API server serves, namespaced or cluster-scoped
    (`kubectl api-resources --namespaced=...`), subresources left out."""
    listings = [("", client.CoreV1Api(api).get_api_resources())]
    for g in client.ApisApi(api).get_api_versions().groups:
        listings.append((g.name, api.call_api(f"/apis/{g.preferred_version.group_version}", "GET",
                                              response_types_map={200: "V1APIResourceList"},
                                              auth_settings=["BearerToken"], _return_http_data_only=True)))
    return sorted({(group, r.name) for group, listing in listings for r in listing.resources
                   if "/" not in r.name and r.namespaced == namespaced})


def refused(call: Callable[[], object]) -> tuple[int, str]:
    """Run ``call``; return the status and message of the ApiException it must raise (the test fails
    if it succeeds)."""
    with pytest.raises(ApiException) as raised:
        call()
    return raised.value.status, json.loads(raised.value.body)["message"]


def pod(name: str, container: dict | None = None, **spec: object) -> dict:
    """A Pod that meets `restricted` except for what ``container`` and ``spec`` change."""
    base = {"name": "c", "image": "cgkit.sandbox/standin:latest",
            "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}
    for key, value in (container or {}).items():
        if key == "securityContext":
            base["securityContext"] = {**base["securityContext"], **value}
        else:
            base[key] = value
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [base], **spec}}


# --------------------------------------------------------------------------- control plane isolation

def test_mtb_pl1_cc_cpi_1_no_access_to_cluster_resources(tenant_admin: client.ApiClient, api: client.ApiClient) -> None:
    """Block access to cluster resources: no verb on any cluster-scoped resource."""
    granted = [f"{verb} {resource}.{group}" for group, resource in api_resources(api, namespaced=False)
               if resource not in SELF_REVIEWS for verb in VERBS if allowed(tenant_admin, verb, resource, group)]
    assert not granted
    assert refused(lambda: client.CoreV1Api(tenant_admin).list_node())[0] == 403


@pytest.mark.parametrize("namespace", OTHER_NS)
def test_mtb_pl1_cc_ti_2_no_access_to_other_tenants_resources(namespace: str, tenant_admin: client.ApiClient,
                                                              api: client.ApiClient) -> None:
    """Block access to other tenant resources: no verb on any namespaced resource elsewhere."""
    granted = [f"{verb} {resource}.{group}" for group, resource in api_resources(api, namespaced=True)
               for verb in VERBS if allowed(tenant_admin, verb, resource, group, namespace)]
    assert not granted
    assert refused(lambda: client.CoreV1Api(tenant_admin).list_namespaced_secret(namespace))[0] == 403


def test_mtb_pl1_bc_cpi_2_multitenancy_objects_cannot_be_changed(tenant_admin: client.ApiClient) -> None:
    """Block multitenant resources: the NetworkPolicies, RoleBindings, ResourceQuota and LimitRange
    cgkit made in the tenant's namespace cannot be annotated or deleted by its admin."""
    net, rbac, core = (client.NetworkingV1Api(tenant_admin), client.RbacAuthorizationV1Api(tenant_admin),
                       client.CoreV1Api(tenant_admin))
    note = {"metadata": {"annotations": {"mtb": "tampered"}}}
    targets = [
        (net.list_namespaced_network_policy, net.patch_namespaced_network_policy, net.delete_namespaced_network_policy),
        (core.list_namespaced_resource_quota, core.patch_namespaced_resource_quota,
         core.delete_namespaced_resource_quota),
        (core.list_namespaced_limit_range, core.patch_namespaced_limit_range, core.delete_namespaced_limit_range),
    ]
    for list_, patch, delete in targets:
        names = [o.metadata.name for o in list_(NS).items]  # the admin may read them
        assert names
        for name in names:
            assert refused(lambda: patch(name, NS, note, dry_run="All"))[0] == 403
            assert refused(lambda: delete(name, NS, dry_run="All"))[0] == 403
    assert refused(lambda: rbac.list_namespaced_role_binding(NS))[0] == 403  # not even readable
    assert not allowed(tenant_admin, "delete", "rolebindings", "rbac.authorization.k8s.io", NS)
    assert not allowed(tenant_admin, "create", "networkpolicies", "networking.k8s.io", NS)


@pytest.mark.parametrize("verb", ["create", "update", "patch", "delete", "deletecollection"])
def test_mtb_pl1_cc_ti_1_quotas_cannot_be_modified(verb: str, tenant_admin: client.ApiClient) -> None:
    """Block modification of resource quotas."""
    assert not allowed(tenant_admin, verb, "resourcequotas", "", NS)


@pytest.mark.parametrize(("verb", "resource"), [("escalate", "roles"), ("bind", "clusterroles"),
                                                ("create", "rolebindings"), ("create", "roles")])
def test_mtb_pl2_cc_ti_1_no_role_privilege_escalation(verb: str, resource: str, tenant_admin: client.ApiClient) -> None:
    """Block role privilege escalation (level 2, cheap to hold at level 1 too)."""
    assert not allowed(tenant_admin, verb, resource, "rbac.authorization.k8s.io", NS)


# ------------------------------------------------------------------------------- pods on the host

FORBIDDEN_PODS = {
    "MTB-PL1-BC-CPI-3 add capabilities": pod("mtb-caps", {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
    "MTB-PL1-BC-CPI-5 privileged": pod("mtb-privileged", {"securityContext": {  # the API requires escalation with it
        "privileged": True, "allowPrivilegeEscalation": True}}),
    "MTB-PL1-BC-CPI-6 privilege escalation": pod("mtb-escalation",
                                                 {"securityContext": {"allowPrivilegeEscalation": True}}),
    "MTB-PL1-BC-CPI-4 run as root": pod("mtb-root", {"securityContext": {"runAsNonRoot": False, "runAsUser": 0}}),
    "MTB-PL1-BC-HI-1 host path": pod("mtb-hostpath", {"volumeMounts": [{"name": "h", "mountPath": "/host"}]},
                                     volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
    "MTB-PL1-BC-HI-3 host network": pod("mtb-hostnet", hostNetwork=True),
    "MTB-PL1-BC-HI-3 host port": pod("mtb-hostport", {"ports": [{"containerPort": 8080, "hostPort": 8080}]}),
    "MTB-PL1-BC-HI-4 host PID": pod("mtb-hostpid", hostPID=True),
    "MTB-PL1-BC-HI-5 host IPC": pod("mtb-hostipc", hostIPC=True),
}


@pytest.mark.parametrize("check", FORBIDDEN_PODS)
def test_a_pod_that_reaches_the_host_is_refused(check: str, tenant_admin: client.ApiClient,
                                                api: client.ApiClient) -> None:
    manifest = FORBIDDEN_PODS[check]
    status, message = refused(lambda: client.CoreV1Api(tenant_admin).create_namespaced_pod(NS, manifest, dry_run="All"))
    assert status == 403 and 'cannot create resource "pods"' in message, message
    status, message = refused(lambda: client.CoreV1Api(api).create_namespaced_pod(NS, manifest, dry_run="All"))
    assert status == 403 and 'violates PodSecurity "restricted:' in message, message


def test_the_compliant_pod_of_those_checks_is_admitted(api: client.ApiClient) -> None:
    """The baseline the forbidden pods differ from passes admission: each refusal is about its one change."""
    client.CoreV1Api(api).create_namespaced_pod(NS, pod("mtb-compliant"), dry_run="All")


def test_mtb_pl1_bc_hi_1_nodeport_services_are_refused(tenant_admin: client.ApiClient, api: client.ApiClient) -> None:
    """Block use of NodePort services: the admin cannot create Services, and the quota allows none."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mtb-nodeport"},
               "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}}
    assert refused(lambda: client.CoreV1Api(tenant_admin).create_namespaced_service(NS, service, dry_run="All")
                   )[0] == 403
    status, message = refused(lambda: client.CoreV1Api(api).create_namespaced_service(NS, service, dry_run="All"))
    assert status == 403 and "exceeded quota" in message and "services.nodeports" in message, message


# ------------------------------------------------------------------------------------- fairness

def tenant_quota(api: client.ApiClient) -> dict[str, str]:
    (quota,) = client.CoreV1Api(api).list_namespaced_resource_quota(NS).items
    return quota.spec.hard


def test_mtb_pl1_cc_fns_1_resource_quotas(api: client.ApiClient, tenant_admin: client.ApiClient) -> None:
    """Configure namespace resource quotas: CPU, memory and storage."""
    assert {"requests.cpu", "limits.cpu", "requests.memory", "limits.memory", "requests.storage"} <= set(
        tenant_quota(api))


def test_mtb_pl1_cc_fns_2_object_count_quotas(api: client.ApiClient, tenant_admin: client.ApiClient) -> None:
    """Configure namespace object limits: Pods, PersistentVolumeClaims, LoadBalancers, NodePorts."""
    hard = tenant_quota(api)
    assert {"pods", "persistentvolumeclaims"} <= set(hard)
    assert hard["services.loadbalancers"] == "0" and hard["services.nodeports"] == "0"


def test_mtb_pl1_bc_ni_1_default_deny_between_tenants(api: client.ApiClient, tenant_admin: client.ApiClient) -> None:
    """Default deny network connections across tenants: a policy that selects every pod and allows
    nothing, both ways (its effect on live traffic: test_live_traffic.py)."""
    policies = client.NetworkingV1Api(api).list_namespaced_network_policy(NS).items
    deny = [p for p in policies if not p.spec.pod_selector.match_labels and not p.spec.pod_selector.match_expressions
            and set(p.spec.policy_types) == {"Ingress", "Egress"} and not p.spec.ingress and not p.spec.egress]
    assert len(deny) == 1
