"""What `cgkit state migrate` checks before it moves a stack (cgkit/migrate.py): an interrupted
engine's pending operations, which the engine's import would drop, are named."""

from __future__ import annotations

from pulumi import automation as auto

from cgkit.interrupted import pending_operations, without_pending_operations

ROLE = "urn:pulumi:sandbox.gm0200::cgkit::cgkit:tenant:TenantBaseline$kubernetes:rbac.authorization.k8s.io/v1:Role::" \
       "gm0200-role-admin"


def test_pending_operations_are_named_by_kind_type_and_name():
    checkpoint = auto.Deployment(version=3, deployment={"resources": [], "pending_operations": [
        {"type": "creating", "resource": {"urn": ROLE, "type": "kubernetes:rbac.authorization.k8s.io/v1:Role"}}]})
    assert pending_operations(checkpoint) == ["creating kubernetes:rbac.authorization.k8s.io/v1:Role gm0200-role-admin"]


def test_a_checkpoint_without_them_has_none():
    assert pending_operations(auto.Deployment(version=3, deployment={"resources": []})) == []
    assert pending_operations(auto.Deployment(version=3, deployment=None)) == []


def test_dropping_them_keeps_every_other_field():
    checkpoint = auto.Deployment(version=3, deployment={"manifest": {"time": "t"}, "resources": [{"urn": ROLE}],
                                                         "pending_operations": [{"type": "creating"}]})
    assert without_pending_operations(checkpoint).deployment == {"manifest": {"time": "t"}, "resources": [{"urn": ROLE}]}
    assert without_pending_operations(checkpoint).version == 3
    assert checkpoint.deployment["pending_operations"] == [{"type": "creating"}], "the input is not changed"
