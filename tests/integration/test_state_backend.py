"""Stacks on a real S3 object store (versitygw on 127.0.0.1): the session's deployed stacks migrated
to it and verified, a tenant deployed and destroyed there, nothing secret in the bucket, and the
way back to a file backend with identical checkpoints (issue 11).

Uses the session's scratch project (`deployed`: the platform and GM0344 on a file backend). The
environment file is pointed at the bucket for this module and put back after, so the modules after
it keep the file backend, whose stacks this module never writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from cgkit import engine, objectstore
from cgkit.cli.exit_codes import ExitStatus
from cgkit.config.loader import environment_file
from cgkit.node_manifests import NODE_IP
from cgkit.stackops import RunOptions, Verb, open_stack, run
from tests.integration.conftest import CODE, ENV, cgkit
from tests.integration.small_fleet import small_tenant
from tests.integration.test_fleet import wait_until_gone

pytestmark = pytest.mark.integration
BUCKET = "cgkit-state"
TENANT = "GM0153"  # one app, deployed and destroyed on the object store



def _checkpoint(root: Path, backend: str, name: str) -> dict:
    """``pulumi stack export`` of ``name`` on ``backend``, without the manifest (its time is the import's)."""
    settings = engine.EngineSettings(root=root, backend_url=backend)
    ws = engine.workspace(settings)
    ws.env_vars["PULUMI_BACKEND_URL"] = engine.backend_of(settings)
    body = dict(ws.export_stack(name).deployment)
    body.pop("manifest", None)
    return body


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[objectstore.ObjectStore]:
    """A running store with the state bucket, on loopback and on the node's bridge (for the fleet's
    runner pods); its root key in the process environment (a file and a profile, as a team's
    AWS_PROFILE), stopped and removed after."""
    store = objectstore.ObjectStore(tmp_path_factory.mktemp("objectstore") / "store")
    store.up(objectstore.free_port(), buckets=[BUCKET], also_on=(NODE_IP,))
    old = {key: os.environ.get(key) for key in store.client_env()}
    os.environ.update(store.client_env())
    try:
        yield store
    finally:
        for key, value in old.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        store.down()


@pytest.fixture(scope="module")
def on_s3(deployed: Path, store: objectstore.ObjectStore) -> Iterator[tuple[Path, dict]]:
    """The session's stacks (the platform and GM0344, deployed) migrated to the bucket and the
    environment file pointed at it (with the team's passphrase given, as a shared backend needs);
    the file put back after (the stacks on the file backend were never written)."""
    file_backend = engine.backend_of(engine.EngineSettings(root=deployed))
    originals = {name: _checkpoint(deployed, file_backend, name) for name in (f"{ENV}.platform", f"{ENV}.gm0344")}
    path = environment_file(deployed, ENV)
    original = path.read_text()
    old_passphrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    try:
        assert cgkit("state", "migrate", "--env", ENV, "--to", store.backend_url(BUCKET)) == ExitStatus.ENGINE, \
            "a shared backend without the team's passphrase is refused"
        os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(deployed / ".cgkit" / "passphrase")
        assert cgkit("state", "migrate", "--env", ENV, "--to", store.backend_url(BUCKET)) == 0
        environment = yaml.safe_load(original)
        environment["state"] = {"backend": store.backend_url(BUCKET)}
        path.write_text(yaml.safe_dump(environment, sort_keys=False))
        yield deployed, originals
    finally:
        path.write_text(original)
        (environment_file(deployed, ENV).parent / "municipalities" / f"{TENANT.lower()}.yaml").unlink(missing_ok=True)
        if old_passphrase is None:
            os.environ.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        else:
            os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"] = old_passphrase


def test_migrated_stacks_are_in_the_bucket_with_their_checkpoints(on_s3, store) -> None:
    project, originals = on_s3
    for name, checkpoint in originals.items():
        assert _checkpoint(project, store.backend_url(BUCKET), name) == checkpoint
    keys = store.objects(BUCKET)
    assert any(key.endswith(f"{ENV}.gm0344.json") for key in keys), sorted(keys)


def test_a_deployed_tenant_previews_no_changes_from_the_bucket(on_s3) -> None:
    settings, stack = open_stack(ENV, CODE, Verb.PREVIEW)
    assert settings.backend_url.startswith(f"s3://{BUCKET}?")
    outcome = run(Verb.PREVIEW, stack, settings, lambda _line: None, RunOptions())
    assert set(outcome.changes) <= {"same"}, outcome.changes


def test_a_tenant_is_deployed_and_destroyed_on_the_bucket(on_s3, store, api: client.ApiClient) -> None:
    project, _ = on_s3
    small_tenant(project, TENANT)
    core = client.CoreV1Api(api)
    assert cgkit("up", "--env", ENV, TENANT, "--yes") == 0
    assert core.read_namespace(TENANT.lower()).metadata.name == TENANT.lower()
    assert any(key.endswith(f"{ENV}.{TENANT.lower()}.json") for key in store.objects(BUCKET))
    assert cgkit("destroy", "--env", ENV, TENANT, "--allow-data-loss", TENANT, "--yes") == 0
    wait_until_gone(lambda: core.read_namespace(TENANT.lower()))
    checkpoint = _checkpoint(project, store.backend_url(BUCKET), f"{ENV}.{TENANT.lower()}")
    assert not checkpoint.get("resources"), "destroy left resources in the state"


def test_the_bucket_holds_no_plaintext_secret(on_s3, store) -> None:
    settings, stack = open_stack(ENV, CODE, Verb.REFRESH)
    values = [v.value for v in stack.get_all_config().values() if v.secret and len(v.value) >= 16]
    assert values, "GM0344 has generated secrets"
    blobs = store.objects(BUCKET)
    assert blobs
    leaked = [key for key, blob in blobs.items() for value in values if value.encode() in blob]
    assert not leaked, f"plaintext secrets in {leaked}"
    state = json.loads(next(blob for key, blob in blobs.items() if key.endswith(f"{ENV}.gm0344.json")))
    assert "ciphertext" in json.dumps(state), "the checkpoint's secrets are encrypted"


def test_migrating_back_to_a_file_backend_round_trips_the_checkpoints(on_s3, tmp_path: Path) -> None:
    project, originals = on_s3
    back = f"file://{tmp_path / 'back'}"
    assert cgkit("state", "migrate", "--env", ENV, "--to", back) == 0
    for name, checkpoint in originals.items():
        assert _checkpoint(project, back, name) == checkpoint
    assert cgkit("state", "migrate", "--env", ENV, "--to", back) == 0  # again: every stack already there, equal
