"""Release status per tenant (cgkit/fleet/status.py, cgkit/upgrade.py) without a backend: states
from what a stack records, the hop `fleet preview --release` shows, downgrades refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cgkit import upgrade
from cgkit.fleet import status
from components import releases
from components.catalog import load_catalog
from tests.unit.test_releases import NEWER, OLDER


@pytest.fixture(autouse=True)
def two_releases(monkeypatch):
    """The checkout is NEWER (its digest the catalog's), OLDER the one before."""
    newer = {**NEWER, "digest": releases.catalog_digest(load_catalog())}
    monkeypatch.setattr(releases, "load_releases", lambda: releases.parse_releases([newer, OLDER]))


@pytest.mark.parametrize("release, deployed, state", [
    ("2026.12.0", True, "current"), ("2026.11.0", True, "behind"), ("2027.01.0", True, "ahead"),
    (None, True, "unrecorded"), (None, False, "not deployed")])
def test_a_tenants_state_follows_the_release_its_stack_records(release, deployed, state):
    assert status.state_of(release, deployed) == state


def test_the_hop_each_state_shows():
    shown = {t.state: t.hop_text("2026.12.0") for t in (
        status.TenantRelease("GM0344", "2026.11.0", "behind"), status.TenantRelease("GM0014", "2026.12.0", "current"),
        status.TenantRelease("GM0363", "2027.01.0", "ahead"), status.TenantRelease("GM0518", None, "unrecorded"),
        status.TenantRelease("GM0599", None, "not deployed"))}
    assert shown == {"behind": "2026.11.0 -> 2026.12.0 (1 release): openzaak 1.29.0 -> 1.30.0, openklant new -> "
                               "2.18.0, objecttypen 3.4.0 -> removed",
                     "current": "2026.12.0 (current)",
                     "ahead": "runs 2027.01.0, newer than 2026.12.0: up refuses (no downgrade)",
                     "unrecorded": "unrecorded -> 2026.12.0 (2 releases)",
                     "not deployed": "not deployed: up deploys release 2026.12.0"}
    assert status.counts([status.TenantRelease("a", None, "behind"), status.TenantRelease("b", None, "current"),
                          status.TenantRelease("c", None, "behind")]) == {"current": 1, "behind": 2}


def _stack(outputs: dict) -> SimpleNamespace:
    return SimpleNamespace(name="sandbox.gm0344", outputs=lambda: {k: SimpleNamespace(value=v) for k, v in outputs.items()})


def test_up_refuses_to_downgrade_a_tenant_and_knows_a_first_deploy():
    with pytest.raises(upgrade.ReleaseRefused, match="stack sandbox.gm0344 runs release 2027.01.0: no release"):
        upgrade.pending_hop(_stack({"release": "2027.01.0", "namespace": "gm0344"}))
    assert upgrade.pending_hop(_stack({})) is None
    assert upgrade.pending_hop(_stack({"release": "2026.11.0"})).images[0] == ("openzaak", "1.29.0", "1.30.0")
    assert upgrade.pending_hop(_stack({"namespace": "gm0344"})).source is None, "deployed before releases"


def test_no_backup_without_a_release_change_or_without_cgkit_backups(monkeypatch):
    def no_backup(*_args, **_kwargs):
        raise AssertionError("no backup Job may run")

    monkeypatch.setattr(upgrade.backup_jobs, "backup_now", no_backup)
    backed_up, not_backed_up = SimpleNamespace(backups=object()), SimpleNamespace(backups=None)
    same = releases.hop("2026.12.0", "2026.12.0")
    changed = releases.hop("2026.11.0", "2026.12.0")
    assert upgrade.backup_before_upgrade(backed_up, same, print) is None
    assert upgrade.backup_before_upgrade(backed_up, None, print) is None
    assert upgrade.backup_before_upgrade(not_backed_up, changed, print) is None


def test_an_upgrade_of_a_backed_up_tenant_backs_it_up_first_and_a_failed_backup_stops_it(monkeypatch):
    results = iter([upgrade.backup_jobs.JobResult("b1", True, "20261207T110000Z 4096", ""),
                    upgrade.backup_jobs.JobResult("b2", False, "FAILED pg_dump: connection refused", "")])
    monkeypatch.setattr(upgrade, "api_client", lambda environment: "api")
    monkeypatch.setattr(upgrade.backup_jobs, "has_schedule", lambda api, namespace: True)
    monkeypatch.setattr(upgrade.backup_jobs, "backup_now", lambda api, namespace: next(results))
    cfg = SimpleNamespace(backups=object(), environment=None, namespace="gm0344", code="GM0344")
    said: list[str] = []
    changed = releases.hop("2026.11.0", "2026.12.0")
    assert upgrade.backup_before_upgrade(cfg, changed, said.append) == "20261207T110000Z"
    assert said[0].startswith("GM0344: backed up 20261207T110000Z before the upgrade 2026.11.0 -> 2026.12.0")
    with pytest.raises(upgrade.BackupError, match="pg_dump: connection refused; nothing was upgraded"):
        upgrade.backup_before_upgrade(cfg, changed, said.append)


def test_a_tenant_without_its_backup_cronjob_yet_is_upgraded_saying_there_was_no_backup(monkeypatch):
    monkeypatch.setattr(upgrade, "api_client", lambda environment: "api")
    monkeypatch.setattr(upgrade.backup_jobs, "has_schedule", lambda api, namespace: False)
    monkeypatch.setattr(upgrade.backup_jobs, "backup_now", lambda *_: pytest.fail("no CronJob, no backup Job"))
    said: list[str] = []
    cfg = SimpleNamespace(backups=object(), environment=None, namespace="gm0344", code="GM0344")
    assert upgrade.backup_before_upgrade(cfg, releases.hop(None, "2026.12.0"), said.append) is None
    assert said == ["GM0344: no backup before the upgrade unrecorded -> 2026.12.0 (2 releases): backups were turned "
                    "on since its last up (this up creates its backup CronJob)"]
