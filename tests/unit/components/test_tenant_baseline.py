"""TenantBaseline: namespace, default-deny, derived allows, RBAC and the default ServiceAccount."""

from __future__ import annotations

import json

import pytest

from cgkit import conventions as cv
from components.catalog import load_catalog
from components.tenant import ExternalDatabase, TenantBaselineArgs, network_policies, role_rules

from rendered import ALL_APPS, all_apps, make_cfg, render, render_resources

NAME, COMPONENT = cv.LABEL_NAME, cv.LABEL_COMPONENT


def test_namespace_is_the_code_with_restricted_pod_security(all_on):
    ns = all_on.get("Namespace", "gm0344")
    labels = ns["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    assert labels[cv.LABEL_TENANT] == "gm0344"
    assert labels[cv.LABEL_GEMEENTE] == "GM0344"
    assert labels[cv.LABEL_MANAGED_BY] == "cgkit"


def test_every_namespaced_object_is_in_the_tenant_namespace(all_on):
    for m in all_on:
        if m["kind"] != "Namespace":
            assert m["metadata"]["namespace"] == "gm0344", (m["kind"], m["metadata"]["name"])


def test_default_deny_covers_ingress_and_egress_of_every_pod(all_on):
    deny = all_on.get("NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny


def test_dns_egress_only_to_kube_dns(all_on):
    dns = all_on.get("NetworkPolicy", "allow-dns")["spec"]
    assert dns["policyTypes"] == ["Egress"]
    (rule,) = dns["egress"]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


@pytest.mark.parametrize("app", ALL_APPS)
def test_ingress_controller_reaches_each_web_pod_on_its_port(all_on, app):
    pol = all_on.get("NetworkPolicy", f"{app}-web-ingress")["spec"]
    assert pol["podSelector"] == {"matchLabels": {NAME: app, COMPONENT: "web"}}
    first = pol["ingress"][0]
    assert first["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-system"}}}]
    assert first["ports"] == [{"protocol": "TCP", "port": 8000}]


def _egress_targets(manifests, app):
    """{(peer app name, port)} the app's pods may open connections to."""
    out = set()
    for rule in manifests.get("NetworkPolicy", f"{app}-egress")["spec"]["egress"]:
        for peer in rule["to"]:
            target = peer.get("podSelector", {}).get("matchLabels", {}).get(NAME) or peer.get("ipBlock", {}).get("cidr")
            for port in rule["ports"]:
                out.add((target, port["port"]))
    return out


def test_app_egress_is_exactly_database_redis_and_declared_dependencies(all_on):
    catalog = load_catalog()
    for app in ALL_APPS:
        expected = {("postgresql", 5432), ("redis", 6379)} | {(dep, 8000) for dep in catalog[app].depends_on}
        assert _egress_targets(all_on, app) == expected, app


def test_callers_are_admitted_to_the_web_pods_they_depend_on(all_on):
    oz = all_on.get("NetworkPolicy", "opennotificaties-web-ingress")["spec"]["ingress"]
    callers = oz[1]["from"][0]["podSelector"]["matchExpressions"][0]
    assert callers == {"key": NAME, "operator": "In", "values": ["objecten", "openklant", "openzaak"]}
    # nobody depends on openformulieren: only the ingress controller reaches it
    assert len(all_on.get("NetworkPolicy", "openformulieren-web-ingress")["spec"]["ingress"]) == 1


def test_backing_services_admit_only_enabled_apps(all_on):
    redis = all_on.get("NetworkPolicy", "redis-ingress")["spec"]
    assert redis["podSelector"] == {"matchLabels": {NAME: "redis", COMPONENT: "redis"}}
    assert redis["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"] == sorted(ALL_APPS)
    pg = all_on.get("NetworkPolicy", "postgresql-ingress")["spec"]
    peers = pg["ingress"][0]["from"]
    assert peers[0]["podSelector"]["matchExpressions"][0]["values"] == sorted(ALL_APPS)
    assert peers[1] == {"podSelector": {"matchLabels": {NAME: "postgresql", COMPONENT: "provision"}}}


def test_a_disabled_app_leaves_no_allow_behind():
    on = render(all_apps())
    off = render(all_apps(apps={"opennotificaties": {"enabled": False}}))
    gone = on.names("NetworkPolicy") - off.names("NetworkPolicy")
    assert gone == {"opennotificaties-web-ingress", "opennotificaties-egress"}
    for pol in off.kind("NetworkPolicy"):
        assert "opennotificaties" not in json.dumps(pol["spec"]), pol["metadata"]["name"]
    # openzaak no longer gets an egress rule to it
    assert ("opennotificaties", 8000) not in _egress_targets(off, "openzaak")
    assert ("opennotificaties", 8000) in _egress_targets(on, "openzaak")


def test_external_database_by_ip_gets_a_host_egress_rule():
    m = render(make_cfg(database={"mode": "external", "host": "10.20.30.40", "port": 6432, "sslmode": "verify-full"}))
    assert _egress_targets(m, "openzaak") >= {("10.20.30.40/32", 6432)}
    assert ("postgresql", 5432) not in _egress_targets(m, "openzaak")
    assert not {"postgresql-ingress", "postgresql-provision-egress"} & m.names("NetworkPolicy")


def test_external_database_by_name_opens_only_its_port():
    m = render(make_cfg(database={"mode": "external", "host": "pg.example.nl"}))
    assert ("0.0.0.0/0", 5432) in _egress_targets(m, "openzaak")
    rule = next(r for r in m.get("NetworkPolicy", "openzaak-egress")["spec"]["egress"] if "ipBlock" in r["to"][0])
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]


def test_external_database_cidr_override():
    ext = ExternalDatabase(host="pg.example.nl", cidr="192.168.7.0/24")
    assert ext.egress_cidr() == "192.168.7.0/24"
    assert ExternalDatabase(host="2001:db8::5").egress_cidr() == "2001:db8::5/128"


def test_network_policies_without_apps_are_deny_and_dns_only():
    pols = network_policies(TenantBaselineArgs(code="GM0344", size="S", apps=[], ingress_namespace="x"))
    assert set(pols) == {"default-deny", "allow-dns"}


def test_roles_use_explicit_verbs_and_viewers_cannot_read_secrets(all_on):
    for role in all_on.kind("Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    viewer = all_on.get("Role", "cgkit-tenant-viewer")
    assert not any("secrets" in r["resources"] for r in viewer["rules"])
    assert not any(set(r["verbs"]) - {"get", "list", "watch"} for r in viewer["rules"])
    admin = all_on.get("Role", "cgkit-tenant-admin")
    assert any("secrets" in r["resources"] and r["verbs"] == ["get", "list", "watch"] for r in admin["rules"])
    assert not any(r["apiGroups"] == ["rbac.authorization.k8s.io"] for r in admin["rules"])


def test_role_bindings_bind_the_municipality_groups(all_on):
    admin = all_on.get("RoleBinding", "cgkit-tenant-admin")
    assert admin["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cgkit-tenant-admin"}
    assert admin["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "utrecht-admins"}]
    viewer = all_on.get("RoleBinding", "cgkit-tenant-viewer")
    assert [s["name"] for s in viewer["subjects"]] == ["utrecht-auditors"]


def test_no_groups_means_no_bindings():
    m = render(make_cfg())
    assert m.kind("RoleBinding") == []
    assert m.names("Role") == {"cgkit-tenant-admin", "cgkit-tenant-viewer"}


def test_no_role_opens_a_shell_or_tunnel_into_pods():
    for role in ("admin", "viewer"):
        granted = {res for r in role_rules(role) for res in r["resources"]}
        assert not granted & {"pods/exec", "pods/attach", "pods/portforward"}, role
    assert {"pods/log"} <= {res for r in role_rules("viewer") for res in r["resources"]}


def test_default_service_account_token_is_not_mounted(all_on):
    sa = all_on.get("ServiceAccount", "default")
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["namespace"] == "gm0344"


def test_default_service_account_is_a_patch_not_an_owned_object():
    patches = [r for r in render_resources(make_cfg())
               if r.manifest["metadata"]["name"] == "default"]
    assert [r.type for r in patches] == ["kubernetes:core/v1:ServiceAccountPatch"]
