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


def test_a_source_without_stacks_is_no_migration(tmp_path, monkeypatch):
    """Nothing moved is an error, never "0 stacks copied; set state.backend to the (empty) target"."""
    import pytest

    from cgkit import engine, migrate

    class Stacks:
        def __init__(self, names):
            self.names = names
            self.env_vars = {}

        def list_stacks(self):
            return [auto.StackSummary(name=n, current=False) for n in self.names]

    source = Stacks(["acc.gm0344"])  # another environment's stack only
    monkeypatch.setattr(engine, "workspace", lambda settings: source)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    settings = engine.EngineSettings(root=tmp_path)
    with pytest.raises(migrate.MigrationError, match="holds no stack of sandbox: nothing to move"):
        migrate.migrate(settings, "sandbox", "file://elsewhere")
