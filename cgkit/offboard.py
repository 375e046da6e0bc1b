"""Offboarding a municipality: what is checked before its tenant is deleted, and what proves it gone.

``cgkit offboard`` (cgkit/cli/offboard_cmds.py) runs these steps in order, and each step runs only
when the one before it succeeded, so an offboarding stopped anywhere before the destroy has deleted
nothing and can simply be run again:

1. export: every database and every media volume of the tenant to the environment's backup bucket,
   ``<env>/<code>/offboard/<id>/`` (``backup_jobs.export``; no retention runs there);
2. verify (``verify_export``): the manifest names every database the tenant's apps use and every
   media volume it has, and each file, read back from the store, has the size and SHA-256 the
   manifest gives;
3. record (``record_retention``): ``retention.json`` beside the export, with the date until which
   it must be kept (the Archiefwet's selection lists give a period per record type; the
   municipality's archivist names the date, cgkit does not guess it), and the same record on this
   machine, ``environments/<env>/offboarded/<code>.json`` (``state``: exported, then destroying
   once the destroy begins, done after step 6);
4. destroy the stack, records included; remove the stack's state and config; delete the tenant's
   account at the sandbox's store (at another store its key stays until that store's IAM removes
   it); return the tenant's released PersistentVolumes (``release_volumes``);
5. prove it gone (``remains``): no namespace, no PersistentVolume claimed from it, no stack;
6. file the municipality away: its file moves to ``environments/<env>/offboarded/<code>.yaml``
   (``file_away``), so the fleet no longer selects it and the record of what it was stays.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from cgkit import backups
from cgkit.backups import BackupError
from cgkit.config.loader import environment_file, municipality_file
from cgkit.sandbox import scrub_volume
from cgkit.writer import write_text
from components.backup import EXPORTS

#: This machine's folder of offboarded municipalities, beside ``municipalities/``.
OFFBOARDED = "offboarded"
_CHUNK = 1 << 20
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


@dataclass(frozen=True)
class ExportFile:
    """One file of an export: its name in the export's folder, size in bytes and SHA-256 (hex)."""

    file: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Export:
    """A verified export: ``id`` (UTC start), ``key`` of its folder, its ``databases`` and media
    ``claims`` by name, and every file it holds."""

    id: str
    key: str
    databases: tuple[str, ...]
    claims: tuple[str, ...]
    files: tuple[ExportFile, ...]

    @property
    def bytes(self) -> int:
        """The size of the export's data files (dumps and archives), in bytes."""
        return sum(f.bytes for f in self.files)


def export_prefix(environment: str, code: str) -> str:
    """The key prefix of a tenant's exports: ``<env>/<code-lowercase>/offboard/``."""
    return f"{backups.prefix(environment, code)}{EXPORTS}"


def check_retain_until(text: str, today: date | None = None) -> date:
    """The date an export must be kept until, from ``YYYY-MM-DD``.

    Raises:
        ValueError: not a YYYY-MM-DD date (nor another ISO form such as 20461231 or 2046-W52-7), or
            not after ``today`` (UTC).
    """
    try:
        if not _ISO_DAY.fullmatch(text.strip()):
            raise ValueError
        until = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a date: give it as YYYY-MM-DD, e.g. 2046-12-31") from None
    if until <= (today or datetime.now(timezone.utc).date()):
        raise ValueError(f"{until.isoformat()} is not in the future: the export is kept until a later day")
    return until


def parse_export(body: bytes, where: str, export_id: str) -> Export:
    """The `Export` a manifest describes (before its files are checked).

    Raises:
        BackupError: not a backup manifest (``backups.parse_manifest``), or a ``media`` entry
            without ``claim``, ``file``, integer ``bytes`` and ``sha256``.
    """
    backup = backups.parse_manifest(body, where, export_id)
    media = json.loads(body).get("media", [])
    try:
        claims = tuple(str(m["claim"]) for m in media)
        files = [ExportFile(str(m["file"]), int(m["bytes"]), str(m["sha256"])) for m in media]
    except (KeyError, TypeError, ValueError) as err:
        raise BackupError(f"{where} has a media entry that is not one ({err})") from None
    files += [ExportFile(str(db["file"]), db["bytes"], db["sha256"]) for db in backup.databases]
    return Export(id=export_id, key=where.rsplit("/", 1)[0] + "/", databases=tuple(d["name"] for d in backup.databases),
                  claims=claims, files=tuple(files))


def verify_export(s3: Any, bucket: str, environment: str, code: str, export_id: str,
                  databases: set[str], claims: set[str]) -> Export:
    """Read export ``export_id`` back from the store and check it whole.

    Args:
        databases: the databases the export must hold (the tenant's apps').
        claims: the media claims (PVC names) it must hold.

    Raises:
        BackupError: no manifest, a database or claim missing from it, or a file missing or whose
            size or SHA-256 differs from the manifest's (named).
    """
    key = f"{export_prefix(environment, code)}{backups.check_id(export_id)}/manifest.json"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise BackupError(f"export {export_id} has no manifest (s3://{bucket}/{key})") from None
    export = parse_export(body, key, export_id)
    missing = sorted(databases - set(export.databases)) + sorted(claims - set(export.claims))
    if missing:
        raise BackupError(f"export {export_id} lacks {', '.join(missing)}: it is not the whole tenant")
    for f in export.files:
        size, digest = _read_back(s3, bucket, export.key + f.file)
        if (size, digest) != (f.bytes, f.sha256):
            raise BackupError(f"export {export_id}: {f.file} reads back as {size} bytes, sha256 {digest[:12]}…; "
                              f"the manifest says {f.bytes} bytes, sha256 {f.sha256[:12]}…")
    return export


def _read_back(s3: Any, bucket: str, key: str) -> tuple[int, str]:
    """Size and SHA-256 of an object as the store returns it (streamed); (-1, '') when missing."""
    try:
        stream = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except s3.exceptions.NoSuchKey:
        return -1, ""
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def retention_record(environment: str, code: str, bucket: str, export: Export, retain_until: date,
                     now: datetime | None = None) -> dict[str, Any]:
    """The record of an offboarding: where the export is, what it holds, until when it is kept."""
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {"code": code.upper(), "environment": environment, "offboarded_at": at.isoformat(timespec="seconds"),
            "export": f"s3://{bucket}/{export.key}", "export_id": export.id, "bytes": export.bytes,
            "databases": list(export.databases), "media": list(export.claims),
            "retain_until": retain_until.isoformat()}


def record_retention(s3: Any, bucket: str, record: dict[str, Any]) -> str:
    """Write ``record`` as ``retention.json`` in the export's folder; return its key."""
    key = record["export"].removeprefix(f"s3://{bucket}/") + "retention.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record, indent=2).encode())
    return key


def local_record(root: Path, environment: str, code: str) -> Path:
    """``environments/<env>/offboarded/<code-lowercase>.json``: this machine's record of it."""
    return environment_file(root, environment).parent / OFFBOARDED / f"{code.lower()}.json"


#: The states of this machine's record, in order: the export verified (the tenant untouched), its
#: destroy begun (a rerun goes on with the destroy, not a new export), the offboarding finished.
EXPORTED, DESTROYING, DONE = "exported", "destroying", "done"


def read_record(root: Path, environment: str, code: str) -> dict[str, Any] | None:
    """This machine's record of ``code``'s offboarding, or None.

    Raises:
        BackupError: the file is not a JSON object (named).
    """
    path = local_record(root, environment, code)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as unreadable:
        record, why = None, str(unreadable)
    else:
        why = "not a JSON object with a state"
    if not isinstance(record, dict) or "state" not in record:
        raise BackupError(f"{path} is not an offboarding record ({why})",
                          hint="move it aside if it is not one of cgkit's; cgkit writes it after a verified export")
    return record


def write_local_record(root: Path, record: dict[str, Any], store_account: str) -> Path:
    """Write ``record`` to `local_record` in state EXPORTED with the tenant's store account (its access
    key id, no secret); return the path. The record of an earlier, finished offboarding of the same
    code (re-onboarded since) moves aside first, to ``<code>-<its export id>.json`` (its ``.yaml``
    likewise); an unfinished one is replaced (its export stays in the bucket).

    Raises:
        BackupError: the existing record is unreadable (``read_record``).
        WriteError: the record is a link or no regular file (`cgkit.writer`: the folder is committed,
            so a pull request could plant one).
    """
    path = local_record(root, record["environment"], record["code"])
    path.parent.mkdir(exist_ok=True)
    earlier = read_record(root, record["environment"], record["code"])
    if earlier is not None and earlier["state"] == DONE:
        for old in (path, path.with_suffix(".yaml")):
            if old.is_file():
                old.rename(old.with_name(f"{old.stem}-{earlier.get('export_id', 'earlier')}{old.suffix}"))
    return write_text(root, path, json.dumps({**record, "store_account": store_account, "state": EXPORTED},
                                             indent=2) + "\n")


def set_state(root: Path, environment: str, code: str, state: str) -> None:
    """Move this machine's record of ``code``'s offboarding to ``state`` (EXPORTED, DESTROYING, DONE).

    Raises:
        WriteError: the record is a link or no regular file (`cgkit.writer`; the folder is committed).
    """
    path = local_record(root, environment, code)
    write_text(root, path, json.dumps({**json.loads(path.read_text()), "state": state}, indent=2) + "\n")


def file_away(root: Path, environment: str, code: str) -> Path:
    """Move the municipality's file to ``environments/<env>/offboarded/<code>.yaml``; return the new
    path (the file kept as it was, beside the record)."""
    source = municipality_file(root, environment, code)
    target = local_record(root, environment, code).with_suffix(".yaml")
    target.parent.mkdir(exist_ok=True)
    shutil.move(source, target)
    return target


def claimed_volumes(core: Any, namespace: str) -> list[Any]:
    """The PersistentVolumes whose claim is (or was) in ``namespace``."""
    return [pv for pv in core.list_persistent_volume().items
            if pv.spec.claim_ref is not None and pv.spec.claim_ref.namespace == namespace]


def release_volumes(core: Any, namespace: str, sandbox_pool: Path | None) -> list[str]:
    """Free the Released PersistentVolumes of ``namespace``'s deleted claims; return their names.

    A volume of the sandbox's pool (a ``local`` path under ``sandbox_pool``) is emptied and returned
    to the pool, as ``cgkit sandbox up`` does; any other is deleted (with reclaim policy Retain the
    storage behind it stays at its provider, which the caller says). A volume still Bound is left.
    """
    freed = []
    for pv in claimed_volumes(core, namespace):
        if pv.status.phase != "Released":
            continue
        local = pv.spec.local.path if pv.spec.local else None
        if sandbox_pool is not None and local and Path(local).parent == sandbox_pool:
            scrub_volume(Path(local))
            core.patch_persistent_volume(pv.metadata.name, {"spec": {"claimRef": None}})
        else:
            core.delete_persistent_volume(pv.metadata.name)
        freed.append(pv.metadata.name)
    return freed


def remains(core: Any, namespace: str, stack_exists: bool) -> list[str]:
    """What is left of an offboarded tenant: its namespace, PersistentVolumes claimed from it, its
    stack; empty when it is gone."""
    from kubernetes.client.rest import ApiException

    left = [f"PersistentVolume {pv.metadata.name}" for pv in claimed_volumes(core, namespace)]
    try:
        core.read_namespace(namespace)
        left.insert(0, f"namespace {namespace}")
    except ApiException as failed:
        if failed.status != 404:
            raise
    return left + (["its stack (state and config)"] if stack_exists else [])
