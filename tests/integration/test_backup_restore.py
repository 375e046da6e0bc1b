"""The restore drill, for real (issue 15): a tenant on the real node backs its PostgreSQL up to the
object store with its own key, the database is dropped, `cgkit restore` brings it back and every
table's rows match the backup; a second restore refuses to overwrite, a drill restores beside the
live database and leaves nothing; the tenant's key reaches its own prefix and nothing else.

The store is the sandbox's own (``cgkit backup grant`` makes accounts there), started by
tests/integration/backup_store.py for this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError
from kubernetes import client

from cgkit import objectstore
from cgkit.cli.backup_cmds import backed_up_config, tenant_s3
from cgkit.cli.exit_codes import ExitStatus
from components import releases
from tests.integration.backup_store import BUCKET, backups_to_the_sandbox_store
from tests.integration.conftest import ENV, cgkit
from tests.integration.small_fleet import forget_tenants, small_tenant
from tests.integration.test_fleet import wait_until_gone
from tests.integration.test_live_traffic import exec_in

pytestmark = pytest.mark.integration
TENANT = "GM0307"  # Amersfoort: objecttypen alone
DB = "objecttypen"
ROWS = 500
# Known rows, a table whose name needs quoting, and PostGIS (its spatial_ref_sys is the extension's).
KNOWN = (f"CREATE EXTENSION IF NOT EXISTS postgis; CREATE TABLE drill_zaak (id int PRIMARY KEY, titel text); "
         f"INSERT INTO drill_zaak SELECT i, 'zaak ' || i FROM generate_series(1, {ROWS}) i; "
         "CREATE TABLE \"Odd \"\"name\"\"\" (x int); INSERT INTO \"Odd \"\"name\"\"\" VALUES (1), (2), (3);")



def psql(namespace: str, sql: str, db: str = "postgres") -> str:
    """Run ``sql`` as the superuser in the tenant's PostgreSQL pod; return its unaligned output."""
    done = exec_in(namespace, "pod/postgresql-0", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "postgres",
                   "-d", db, "-c", sql)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def backed_up(deployed: Path, api: client.ApiClient) -> Iterator[tuple[Path, objectstore.ObjectStore]]:
    """The sandbox's store as the environment's backup store, TENANT granted its key and deployed;
    destroyed, the file put back and the store stopped after."""
    project = deployed
    with backups_to_the_sandbox_store(project) as store:
        small_tenant(project, TENANT)
        try:
            assert cgkit("backup", "grant", "--env", ENV, TENANT) == 0
            assert cgkit("up", "--env", ENV, TENANT, "--yes") == 0
            yield project, store
        finally:
            cgkit("destroy", "--env", ENV, TENANT, "--allow-data-loss", TENANT, "--yes")
            forget_tenants(project, (TENANT,))


def _backups(capsys) -> dict:
    capsys.readouterr()
    assert cgkit("backup", "list", "--env", ENV, TENANT, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_backup_drop_restore_gives_back_every_row(backed_up, capsys) -> None:
    namespace = TENANT.lower()
    psql(namespace, KNOWN, DB)
    assert cgkit("backup", "now", "--env", ENV, TENANT) == 0
    listed = _backups(capsys)
    assert len(listed["backups"]) == 1 and listed["incomplete"] == []
    backup = listed["backups"][0]
    assert backup["databases"] == [DB] and backup["rows"] >= ROWS + 3 and backup["bytes"] > 0

    psql(namespace, f"DROP DATABASE {DB} WITH (FORCE)")
    assert cgkit("restore", "--env", ENV, TENANT, "--from", backup["id"]) == 0
    assert psql(namespace, "SELECT count(*), sum(id) FROM drill_zaak", DB) == f"{ROWS}|{ROWS * (ROWS + 1) // 2}"
    assert psql(namespace, "SELECT string_agg(x::text, ',' ORDER BY x) FROM \"Odd \"\"name\"\"\"", DB) == "1,2,3"
    assert psql(namespace, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{DB}'") == DB
    assert psql(namespace, f"SELECT has_database_privilege('public', '{DB}', 'CONNECT')") == "f", \
        "the restored database is closed to the other apps' roles, as provisioning left it"


def test_a_restore_never_overwrites_and_a_drill_leaves_nothing(backed_up, capsys) -> None:
    backup_id = _backups(capsys)["backups"][-1]["id"]
    assert cgkit("restore", "--env", ENV, TENANT, "--from", backup_id) == ExitStatus.FAILED
    assert "the database exists" in capsys.readouterr().err
    assert cgkit("restore", "--env", ENV, TENANT, "--from", backup_id, "--drill") == 0
    assert f"drilled (restored, checked, dropped) {backup_id} in {TENANT}: {DB}_drill: " in capsys.readouterr().out
    assert _backups(capsys)["last_drill"]["backup"] == backup_id, "the drill is on record beside the backups"
    assert psql(TENANT.lower(), f"SELECT count(*) FROM pg_database WHERE datname LIKE '{DB}%'") == "1"


def test_the_tenants_key_reaches_its_own_prefix_and_nothing_else(backed_up) -> None:
    _, store = backed_up
    s3 = tenant_s3(backed_up_config(TENANT, ENV))
    own = f"{ENV}/{TENANT.lower()}/"
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=own)["KeyCount"] > 0
    for attempt in (lambda: s3.put_object(Bucket=BUCKET, Key=f"{ENV}/gm0344/x", Body=b"x"),
                    lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{ENV}/"),
                    lambda: s3.list_objects_v2(Bucket="cgkit-state")):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] in ("AccessDenied", "NoSuchBucket"), refused.value.response
    names = set(store.objects(BUCKET))
    assert names and all(n.startswith(own) for n in names)
    assert not any(name.endswith(".json") and b"password" in body.lower() for name, body in store.objects(BUCKET).items())


def _status(capsys) -> dict:
    capsys.readouterr()
    assert cgkit("fleet", "status", "--env", ENV, TENANT, "--json") == 0
    tenant, = json.loads(capsys.readouterr().out)["tenants"]
    return tenant


def test_an_upgrade_to_a_new_release_backs_the_tenant_up_first(backed_up, monkeypatch, capsys) -> None:
    project, _ = backed_up
    current = releases.current()
    assert _status(capsys) == {"code": TENANT, "release": current.version, "state": "current"}
    before = {b["id"] for b in _backups(capsys)["backups"]}
    newer = {**current.model_dump(mode="json"), "version": f"{current.version}1"}  # 2026.12.0 -> 2026.12.01
    listed = [newer, current.model_dump(mode="json")]
    path = project / "components" / "releases.yaml"
    original = path.read_text()
    path.write_text(yaml.safe_dump(listed, sort_keys=False))  # what the tenant program reads
    monkeypatch.setattr(releases, "load_releases", lambda: releases.parse_releases(listed))  # and this process
    try:
        assert _status(capsys)["state"] == "behind"
        assert cgkit("up", "--env", ENV, TENANT, "--yes") == 0
        said = capsys.readouterr().err
        assert f"before the upgrade {current.version} -> {newer['version']} (1 release)" in said
        newest = _backups(capsys)["backups"][-1]["id"]
        assert newest not in before and f"backed up {newest} before the upgrade" in said, \
            "a new backup (retention keeps the newest of a day, so the count may stay)"
        assert _status(capsys) == {"code": TENANT, "release": newer["version"], "state": "current"}
    finally:
        path.write_text(original)
    monkeypatch.undo()
    assert _status(capsys)["state"] == "ahead"
    assert cgkit("up", "--env", ENV, TENANT, "--yes") == ExitStatus.FAILED, "no downgrade"
    assert f"runs release {newer['version']}" in capsys.readouterr().err


def test_destroying_the_tenant_leaves_its_backups(backed_up, api: client.ApiClient) -> None:
    _, store = backed_up
    assert cgkit("destroy", "--env", ENV, TENANT, "--allow-data-loss", TENANT, "--yes") == 0
    wait_until_gone(lambda: client.CoreV1Api(api).read_namespace(TENANT.lower()))
    assert any(name.endswith("/manifest.json") for name in store.objects(BUCKET)), "backups outlive the tenant"
