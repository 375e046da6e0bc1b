"""Offboarding's checks without a cluster (cgkit/offboard.py): the retention date, reading an
export back whole (over an in-memory S3 that returns what was put), the records, moving the
municipality's file away, freeing its volumes and naming what remains. The real offboarding runs in
tests/integration/test_offboard.py."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException

from cgkit import offboard
from cgkit.backups import BackupError
from cgkit.config.loader import municipality_file
from cgkit.writer import WriteError

EXPORT_ID = "20261207T101500Z"
FOLDER = f"sandbox/gm0014/offboard/{EXPORT_ID}/"


class MemoryS3:
    """get_object/put_object over a dict, raising NoSuchKey as boto3's client does."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        class NoSuchKey(Exception):
            pass

    def __init__(self, objects: dict[str, bytes]):
        self.objects = dict(objects)

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803 - boto3's keywords
        if Key not in self.objects:
            raise self.exceptions.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803
        self.objects[Key] = Body


def _entry(name: str, body: bytes) -> dict:
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), "file": name}


def _store(dumps: dict[str, bytes], media: dict[str, bytes]) -> MemoryS3:
    manifest = {"id": EXPORT_ID, "created": "2026-12-07T10:15:00Z",
                "databases": [{"name": db, "tables": {"public.t": 1}, **_entry(f"{db}.dump", body)}
                              for db, body in dumps.items()],
                "media": [{"claim": claim, "files": 1, **_entry(f"media-{claim}.tar", body)}
                          for claim, body in media.items()]}
    objects = {FOLDER + "manifest.json": json.dumps(manifest).encode()}
    objects.update({f"{FOLDER}{db}.dump": body for db, body in dumps.items()})
    objects.update({f"{FOLDER}media-{claim}.tar": body for claim, body in media.items()})
    return MemoryS3(objects)


def _verify(s3: MemoryS3, databases=("objecten", "objecttypen"), claims=("objecten-media",)) -> offboard.Export:
    return offboard.verify_export(s3, "b", "sandbox", "GM0014", EXPORT_ID, set(databases), set(claims))


@pytest.fixture
def store() -> MemoryS3:
    return _store({"objecten": b"dump one", "objecttypen": b"dump two"}, {"objecten-media": b"tar bytes"})


def test_a_whole_export_verifies(store):
    export = _verify(store)
    assert export.databases == ("objecten", "objecttypen") and export.claims == ("objecten-media",)
    assert export.key == FOLDER and export.bytes == len(b"dump one" + b"dump two" + b"tar bytes")


def test_a_changed_file_is_named(store):
    store.objects[FOLDER + "objecttypen.dump"] = b"dump 2wo"
    with pytest.raises(BackupError, match="objecttypen.dump reads back as 8 bytes, sha256 .* the manifest says 8"):
        _verify(store)


def test_a_missing_file_is_named(store):
    del store.objects[FOLDER + "media-objecten-media.tar"]
    with pytest.raises(BackupError, match="media-objecten-media.tar reads back as -1 bytes"):
        _verify(store)


@pytest.mark.parametrize("databases, claims, missing", [
    (("objecten", "objecttypen", "openzaak"), ("objecten-media",), "openzaak"),
    (("objecten",), ("objecten-media", "openzaak-media"), "openzaak-media")])
def test_an_export_without_a_database_or_volume_of_the_tenant_is_not_whole(store, databases, claims, missing):
    with pytest.raises(BackupError, match=f"lacks {missing}: it is not the whole tenant"):
        _verify(store, databases, claims)


def test_no_manifest_no_export():
    with pytest.raises(BackupError, match="has no manifest"):
        _verify(MemoryS3({}))


def test_a_media_entry_that_is_not_one_is_refused(store):
    manifest = json.loads(store.objects[FOLDER + "manifest.json"])
    del manifest["media"][0]["sha256"]
    store.objects[FOLDER + "manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(BackupError, match="has a media entry that is not one"):
        _verify(store)


@pytest.mark.parametrize("text, message", [("31-12-2046", "is not a date"), ("20461231", "is not a date"),
                                           ("2046-W52-7", "is not a date"), ("2046-02-30", "is not a date"),
                                           ("2026-12-07", "is not in the future"), ("2020-01-01", "is not in the future")])
def test_a_retention_date_must_be_a_later_day(text, message):
    with pytest.raises(ValueError, match=message):
        offboard.check_retain_until(text, today=date(2026, 12, 7))
    assert offboard.check_retain_until(" 2046-12-31 ", today=date(2026, 12, 7)) == date(2046, 12, 31)


def test_the_retention_record_goes_beside_the_export_and_to_this_machine(store, tmp_path):
    record = offboard.retention_record("sandbox", "gm0014", "b", _verify(store), date(2046, 12, 31),
                                       now=datetime(2026, 12, 7, 11, 0, tzinfo=timezone.utc))
    assert offboard.record_retention(store, "b", record) == FOLDER + "retention.json"
    assert json.loads(store.objects[FOLDER + "retention.json"]) == record
    assert record["export"] == f"s3://b/{FOLDER}" and record["retain_until"] == "2046-12-31"
    assert record["code"] == "GM0014" and record["offboarded_at"] == "2026-12-07T11:00:00+00:00"
    (tmp_path / "environments" / "sandbox").mkdir(parents=True)
    path = offboard.write_local_record(tmp_path, record, store_account="gm0014abc")
    assert path == tmp_path / "environments/sandbox/offboarded/gm0014.json"
    assert offboard.read_record(tmp_path, "sandbox", "GM0014") == {**record, "store_account": "gm0014abc",
                                                                    "state": "exported"}
    for state in (offboard.DESTROYING, offboard.DONE):
        offboard.set_state(tmp_path, "sandbox", "GM0014", state)
        assert offboard.read_record(tmp_path, "sandbox", "GM0014")["state"] == state


def test_a_second_offboarding_of_a_code_keeps_the_first_ones_record_and_replaces_an_unfinished_one(tmp_path):
    (tmp_path / "environments" / "sandbox").mkdir(parents=True)
    first = {"environment": "sandbox", "code": "GM0014", "export_id": "20250101T000000Z"}
    offboard.write_local_record(tmp_path, first, "a")
    offboard.local_record(tmp_path, "sandbox", "GM0014").with_suffix(".yaml").write_text("code: GM0014\n")
    offboard.set_state(tmp_path, "sandbox", "GM0014", offboard.DONE)
    offboard.write_local_record(tmp_path, {**first, "export_id": "20260101T000000Z"}, "b")
    offboard.write_local_record(tmp_path, {**first, "export_id": EXPORT_ID}, "c")  # the one before never finished
    folder = tmp_path / "environments/sandbox/offboarded"
    assert sorted(p.name for p in folder.iterdir()) == ["gm0014-20250101T000000Z.json", "gm0014-20250101T000000Z.yaml",
                                                        "gm0014.json"]
    assert json.loads((folder / "gm0014-20250101T000000Z.json").read_text())["state"] == "done"
    assert offboard.read_record(tmp_path, "sandbox", "GM0014")["export_id"] == EXPORT_ID


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "{}"])
def test_a_record_that_is_not_one_is_named(tmp_path, text):
    path = offboard.local_record(tmp_path, "sandbox", "GM0014")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(BackupError, match=f"{path} is not an offboarding record"):
        offboard.read_record(tmp_path, "sandbox", "GM0014")


def test_the_municipalitys_file_moves_to_offboarded_unchanged(tmp_path):
    source = municipality_file(tmp_path, "sandbox", "GM0014")
    source.parent.mkdir(parents=True)
    source.write_text("code: GM0014\n")
    moved = offboard.file_away(tmp_path, "sandbox", "GM0014")
    assert not source.exists() and moved == tmp_path / "environments/sandbox/offboarded/gm0014.yaml"
    assert moved.read_text() == "code: GM0014\n"


def _pv(name: str, namespace: str, phase: str, local: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(metadata=SimpleNamespace(name=name),
                           spec=SimpleNamespace(claim_ref=SimpleNamespace(namespace=namespace),
                                                local=SimpleNamespace(path=local) if local else None),
                           status=SimpleNamespace(phase=phase))


class FakeCore:
    """The CoreV1Api calls offboarding makes, over a list of PVs and a set of namespaces."""

    def __init__(self, pvs: list, namespaces: set[str]):
        self.pvs, self.namespaces, self.calls = pvs, namespaces, []

    def list_persistent_volume(self):
        return SimpleNamespace(items=list(self.pvs))

    def patch_persistent_volume(self, name, body):
        self.calls.append(("patch", name, body))
        self.pvs = [pv for pv in self.pvs if pv.metadata.name != name]

    def delete_persistent_volume(self, name):
        self.calls.append(("delete", name))
        self.pvs = [pv for pv in self.pvs if pv.metadata.name != name]

    def read_namespace(self, name):
        if name not in self.namespaces:
            raise ApiException(status=404)


def test_released_volumes_of_the_pool_are_emptied_and_returned_others_deleted_bound_ones_left(tmp_path):
    pool = tmp_path / "volumes"
    (pool / "pv-001").mkdir(parents=True)
    (pool / "pv-001" / "zaak.dump").write_text("records")
    core = FakeCore([_pv("pv-001", "gm0014", "Released", str(pool / "pv-001")),
                     _pv("disk-7", "gm0014", "Released"), _pv("pv-002", "gm0014", "Bound", str(pool / "pv-002")),
                     _pv("pv-003", "gm0344", "Released", str(pool / "pv-003"))], set())
    assert offboard.release_volumes(core, "gm0014", pool) == ["pv-001", "disk-7"]
    assert list((pool / "pv-001").iterdir()) == [], "no record of the tenant reaches the next one"
    assert core.calls == [("patch", "pv-001", {"spec": {"claimRef": None}}), ("delete", "disk-7")]
    assert offboard.remains(core, "gm0014", stack_exists=True) == ["PersistentVolume pv-002",
                                                                    "its stack (state and config)"]


def test_what_remains_names_the_namespace_first_and_nothing_when_gone():
    core = FakeCore([], {"gm0014"})
    assert offboard.remains(core, "gm0014", stack_exists=False) == ["namespace gm0014"]
    assert offboard.remains(FakeCore([], set()), "gm0014", stack_exists=False) == []


def test_a_record_planted_as_a_link_is_refused_and_what_it_leads_to_is_untouched(tmp_path):
    """environments/<env>/offboarded/ is committed: a pull request could plant a link there."""
    outside = tmp_path / "outside.json"
    outside.write_text('{"state": "exported"}\n')  # reads as an unfinished record: the writer is what refuses
    project = tmp_path / "project"
    (project / "environments" / "sandbox" / "offboarded").mkdir(parents=True)
    offboard.local_record(project, "sandbox", "GM0014").symlink_to(outside)
    with pytest.raises(WriteError, match="link"):
        offboard.write_local_record(project, {"environment": "sandbox", "code": "GM0014", "export_id": "x"}, "a")
    assert outside.read_text() == '{"state": "exported"}\n'
