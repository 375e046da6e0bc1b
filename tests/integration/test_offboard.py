"""Offboarding, for real (issue 15): on the real node, `cgkit offboard` exports a tenant's databases
and media volume to the sandbox's object store, reads the export back, and only then destroys the
tenant and proves it gone, its key at the store deleted with it; an offboarding killed during its
export deletes nothing.

TENANT runs objecttypen and objecten (objecten has a media volume); known rows go into objecten's
database and a known file into its media volume first.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError
from kubernetes import client

from cgkit import engine, objectstore
from cgkit.cli.backup_cmds import backed_up_config, tenant_s3
from cgkit.cli.exit_codes import ExitStatus
from cgkit.config import loader
from cgkit.config.loader import municipality_file
from cgkit.offboard import claimed_volumes, export_prefix
from cgkit.stackops import engine_settings
from components.catalog import load_catalog
from tests.integration.backup_store import BUCKET, backups_to_the_sandbox_store
from tests.deadlines import COMMAND_S, finish, seconds
from tests.integration.conftest import ENV, cgkit
from tests.integration.small_fleet import files_put_back, small_tenant
from tests.integration.test_backup_restore import psql
from tests.integration.test_live_traffic import exec_in

pytestmark = pytest.mark.integration
TENANT = "GM0518"  # 's-Gravenhage: no other module deploys it
APPS = ("objecttypen", "objecten")
KNOWN_FILE = "zaak-document.txt"
RETAIN = "2046-12-31"


@pytest.fixture(scope="module")
def tenant(deployed: Path, api: client.ApiClient) -> Iterator[tuple[Path, objectstore.ObjectStore]]:
    """TENANT with objecttypen and objecten, backed up to the sandbox's store, deployed; known rows in
    objecten's database and a known file in its media volume. Destroyed after, if a test left it, and
    its checked-in file put back."""
    project = deployed
    with backups_to_the_sandbox_store(project) as store, files_put_back(project, (TENANT,)):
        path = small_tenant(project, TENANT)
        data = yaml.safe_load(path.read_text())
        data["apps"] = {key: ({} if key in APPS else {"enabled": False}) for key in load_catalog()}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            assert cgkit("backup", "grant", "--env", ENV, TENANT) == 0
            assert cgkit("up", "--env", ENV, TENANT, "--yes") == 0
            namespace = TENANT.lower()
            psql(namespace, "CREATE TABLE archief (id int PRIMARY KEY); "
                            "INSERT INTO archief SELECT generate_series(1, 250)", "objecten")
            wrote = exec_in(namespace, "deploy/objecten", "python3", "-c",
                            f"open('/app/media/{KNOWN_FILE}', 'w').write('besluit 2026-001')")
            assert wrote.returncode == 0, wrote.stderr
            yield project, store
        finally:
            if municipality_file(project, ENV, TENANT).is_file():
                cgkit("destroy", "--env", ENV, TENANT, "--allow-data-loss", TENANT, "--yes")


def _stack_exists(project: Path) -> bool:
    settings = engine_settings(project, loader.load_environment(project, ENV), cluster=False)
    return engine.existing_stack(settings, f"{ENV}.{TENANT.lower()}") is not None


def _exports(store: objectstore.ObjectStore) -> dict[str, bytes]:
    return {k: v for k, v in store.objects(BUCKET).items() if k.startswith(export_prefix(ENV, TENANT))}


def test_a_retention_date_in_the_past_is_refused_before_anything(tenant, api: client.ApiClient, capsys) -> None:
    project, store = tenant
    assert cgkit("offboard", "--env", ENV, TENANT, "--retain-until", "2020-01-01", "--yes") == ExitStatus.FAILED
    assert "--retain-until 2020-01-01 is not in the future" in capsys.readouterr().err
    client.CoreV1Api(api).read_namespace(TENANT.lower())
    assert _stack_exists(project) and not _exports(store)


def test_an_offboarding_killed_during_its_export_deletes_nothing(tenant, api: client.ApiClient) -> None:
    project, _ = tenant
    batch = client.BatchV1Api(api)
    run = subprocess.Popen([str(Path(sys.executable).parent / "cgkit"), "offboard", "--env", ENV, TENANT,
                            "--retain-until", RETAIN, "--yes"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    deadline = time.monotonic() + COMMAND_S
    while not batch.list_namespaced_job(TENANT.lower(), label_selector="app.kubernetes.io/component=backup").items:
        assert run.poll() is None, f"offboard ended before its export began: {run.stderr.read().decode()}"
        assert time.monotonic() < deadline, f"no export Job within {COMMAND_S:.0f}s"
        time.sleep(0.5)
    run.send_signal(signal.SIGKILL)
    finish(run, seconds(30))
    client.CoreV1Api(api).read_namespace(TENANT.lower())
    assert _stack_exists(project), "the stack is still there"
    assert municipality_file(project, ENV, TENANT).is_file(), "the municipality's file is where it was"
    assert psql(TENANT.lower(), "SELECT count(*) FROM archief", "objecten") == "250"


def test_offboard_exports_verifies_destroys_and_leaves_nothing(tenant, api: client.ApiClient, capsys) -> None:
    project, store = tenant
    old_key = tenant_s3(backed_up_config(TENANT, ENV))
    capsys.readouterr()
    assert cgkit("offboard", "--env", ENV, TENANT, "--retain-until", RETAIN, "--yes") == 0
    assert f"offboarded {TENANT}: export " in capsys.readouterr().out

    exports = _exports(store)
    retention = [json.loads(body) for key, body in exports.items() if key.endswith("/retention.json")]
    assert len(retention) == 1 and retention[0]["retain_until"] == RETAIN
    record = retention[0]
    assert set(record["databases"]) >= set(APPS) and record["media"] == ["objecten-media"]
    folder = f"{export_prefix(ENV, TENANT)}{record['export_id']}/"
    manifest = json.loads(exports[folder + "manifest.json"])
    objecten = next(d for d in manifest["databases"] if d["name"] == "objecten")
    assert objecten["tables"]['public.archief'] == 250
    archive = exports[folder + "media-objecten-media.tar"]
    assert b"besluit 2026-001" in archive and KNOWN_FILE.encode() in archive

    core = client.CoreV1Api(api)
    assert TENANT.lower() not in {n.metadata.name for n in core.list_namespace().items}
    assert claimed_volumes(core, TENANT.lower()) == [], "no PersistentVolume of the tenant's is left"
    assert not _stack_exists(project), "no state, no config"
    assert not municipality_file(project, ENV, TENANT).is_file()
    offboarded = municipality_file(project, ENV, TENANT).parent.parent / "offboarded"
    assert yaml.safe_load((offboarded / f"{TENANT.lower()}.yaml").read_text())["code"] == TENANT
    local = json.loads((offboarded / f"{TENANT.lower()}.json").read_text())
    assert local == {**record, "state": "done", "store_account": local["store_account"]}
    assert local["store_account"].startswith(TENANT.lower()), "the account's id (never its secret)"
    with pytest.raises(ClientError):
        old_key.list_objects_v2(Bucket=BUCKET, Prefix=export_prefix(ENV, TENANT))
