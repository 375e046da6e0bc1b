"""Backups of a tenant's PostgreSQL: where they go, when, how long they stay, and how to read them.

A backup is one folder in the environment's bucket, ``<environment>/<code-lowercase>/<id>/``, where
``id`` is the UTC time it started (``20261207T023000Z``). It holds one ``pg_dump`` custom-format
file per app database (``<db>.dump``), a ``<db>.json`` per database and ``manifest.json`` with all of
them: file, size in bytes, SHA-256, and the rows of every table as the dump holds them. The manifest
is written last, so a folder without one is an incomplete backup. A successful restore drill leaves
a record in ``<environment>/<code>/drills/<UTC time>.json``. The scripts that make, upload,
fetch and restore backups run in the tenant (components/scripts/backup-*.sh); this module is what
the CLI and the config need of them.

Retention (``keep_daily``, ``keep_weekly``): after each upload, the newest backup of each of the
newest ``keep_daily`` days that have one, and of each of the newest ``keep_weekly`` ISO weeks, stay;
every other backup of the tenant is deleted. The pattern is the grandfather-father-son scheme of
pgBackRest's and restic's ``--keep-daily``/``--keep-weekly``.

Endpoints: the store must be something a NetworkPolicy can name exactly (``cgkit.netpeer``): the
backup pods may reach that address and port and nothing else outside the tenant.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cgkit import netpeer
from cgkit.errors import CgkitError

EXAMPLE = "http://10.0.20.5:9000"
VALID = (f"a valid endpoint is http(s)://<host>:<port> where the host is a cluster Service (<service>.<namespace>.svc"
         f"[.cluster.local]) or an IP address, e.g. {EXAMPLE}")
WORDING = netpeer.Wording(
    who="object store", valid=VALID, scheme="S3 is spoken over http or https",
    path="the endpoint is the store's base URL (the bucket is a field of its own)",
    port="S3 gateways listen on 443, 9000 or another port of their own",
    forward="run an S3 gateway or proxy in the cluster that forwards to it")
#: The folder of a tenant's restore drill records, beside its backups.
DRILLS = "drills/"
#: A backup's id: the UTC time it started.
ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}Z", re.ASCII)
#: Cron macros Kubernetes' CronJob accepts beside five fields (robfig/cron v3's standard parser, which
#: the CronJob controller uses).
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: Each cron field's name and range in robfig/cron v3: minute, hour, day of month, month, day of week
#: (0-6, Sunday 0; it refuses 7).
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_FIELD_PART = re.compile(r"(\*|([0-9]{1,2})(-([0-9]{1,2}))?)(/([0-9]{1,2}))?", re.ASCII)
#: The last day of each month in a leap year: a day-of-month no listed month has never fires.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
SCHEDULE_VALID = ("a valid schedule is five cron fields (minute hour day-of-month month day-of-week), e.g. "
                  "'30 2 * * *', or @daily")
#: Bucket naming rules of S3 (AWS, "General purpose bucket naming rules"), which S3-compatible stores follow.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_BUCKET_RESERVED = (("xn--", "sthree-", "amzn-s3-demo-"), ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
BUCKET_VALID = "a valid bucket name is 3-63 lower-case letters, digits, dots and hyphens, e.g. cgkit-backups"


class BackupError(CgkitError):
    """A backup could not be made, listed or restored."""

    reference = "backups"


def store_destination(endpoint: str) -> netpeer.Destination:
    """The NetworkPolicy peer of a backup store endpoint (``cgkit.netpeer.destination``).

    Raises:
        ValueError: the endpoint is not http(s)://<cluster Service or IP>:<port>; the message says why.
    """
    return netpeer.destination(endpoint, WORDING)


def check_schedule(schedule: str) -> str:
    """Return ``schedule`` if it is a cron schedule a CronJob takes and that fires: five fields
    (minute hour day-of-month month day-of-week; ``*``, numbers, ranges ``a-b``, steps ``/n``, lists
    ``,``) within robfig/cron v3's ranges, or a macro such as ``@daily``. Names (``MON``), ``TZ=``
    (the CronJob's ``timeZone`` is UTC), ``@reboot``, reversed ranges, a step of 0 and a day of month
    that none of the listed months has (``0 0 31 2 *``) are refused.

    Raises:
        ValueError: a sentence naming the field that is wrong and what is valid.
    """
    if schedule in _MACROS:
        return schedule
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"'{schedule}' has {len(fields)} fields; {SCHEDULE_VALID}")
    allowed = [_field_values(text, *spec, schedule) for text, spec in zip(fields, _FIELDS)]
    days, months = allowed[2], allowed[3]
    if fields[4] == "*" and not any(day <= _MONTH_DAYS[month - 1] for day in days for month in months):
        raise ValueError(f"'{schedule}' never fires: no month it names has day {fields[2]}; {SCHEDULE_VALID}")
    return schedule


def _field_values(text: str, name: str, low: int, high: int, schedule: str) -> set[int]:
    """The values one cron field allows. Raises ValueError naming the field."""
    values: set[int] = set()
    for part in text.split(","):
        match = _FIELD_PART.fullmatch(part)
        first = int(match.group(2)) if match and match.group(2) else low
        # "a-b", "a" (alone, or "a/n": a to the end), "*"
        last = int(match.group(4)) if match and match.group(4) else \
            (first if match and match.group(2) and not match.group(6) else high)
        step = int(match.group(6)) if match and match.group(6) else 1
        if match is None or not low <= first <= last <= high or not 1 <= step <= high:
            raise ValueError(f"'{schedule}': the {name} '{text}' is not {low}-{high}, *, a rising range, a step of "
                             f"1 to {high} or a list of them; {SCHEDULE_VALID}")
        values.update(range(first, last + 1, step))
    return values


def check_bucket(bucket: str) -> str:
    """Return ``bucket`` if S3 takes it as a bucket name: 3-63 of ``a-z0-9.-``, starting and ending
    with a letter or digit, no ``..``, ``.-`` or ``-.``, not an IP address, no reserved prefix
    (``xn--``, ``sthree-``) or suffix (``-s3alias``, ``--ol-s3``, ``.mrap``, ``--x-s3``).

    Raises:
        ValueError: a sentence saying what is wrong and what is valid.
    """
    prefixes, suffixes = _BUCKET_RESERVED
    why = ("has characters or a length S3 refuses" if not _BUCKET.fullmatch(bucket)
           else "has '..', '.-' or '-.'" if any(s in bucket for s in ("..", ".-", "-.")) else
           "is written as an IP address" if re.fullmatch(r"[0-9]+(\.[0-9]+){3}", bucket)
           else "starts or ends with a name S3 reserves" if bucket.startswith(prefixes) or bucket.endswith(suffixes)
           else None)
    if why:
        raise ValueError(f"'{bucket}' {why}; {BUCKET_VALID}")
    return bucket


def check_id(backup_id: str) -> str:
    """Return ``backup_id`` if it is a backup's id: the UTC time ``YYYYMMDDTHHMMSSZ`` of a real date.

    Raises:
        ValueError: not such an id (the message shows at most its first 40 characters).
    """
    try:
        if not ID_PATTERN.fullmatch(backup_id):
            raise ValueError
        datetime.strptime(backup_id, "%Y%m%dT%H%M%SZ")
    except ValueError:
        shown = backup_id if len(backup_id) <= 40 else backup_id[:40] + "…"
        raise ValueError(f"'{shown}' is not a backup id (the UTC time a backup started, e.g. 20261207T023000Z)") from None
    return backup_id


def prefix(environment: str, code: str) -> str:
    """The folder of one tenant's backups in the bucket: ``<environment>/<code-lowercase>/``."""
    return f"{environment}/{code.lower()}/"


def policy_sid(environment: str, code: str) -> str:
    """The name of a tenant's statements in the bucket policy of the sandbox's store:
    ``cgkit-<env>-<code-lowercase>``."""
    return f"cgkit-{environment}-{code.lower()}"


@dataclass(frozen=True)
class Backup:
    """One backup as its manifest describes it: ``id``, ``created`` (ISO 8601, UTC) and per database
    its file, ``bytes``, ``sha256`` and ``tables`` (``schema.table`` -> rows)."""

    id: str
    created: str
    databases: tuple[dict[str, Any], ...]

    @property
    def bytes(self) -> int:
        """The size of all its dump files, in bytes."""
        return sum(int(db["bytes"]) for db in self.databases)

    @property
    def rows(self) -> int:
        """The rows of all tables of all its databases."""
        return sum(sum(db["tables"].values()) for db in self.databases)


def list_backups(s3: Any, bucket: str, environment: str, code: str) -> tuple[list[Backup], list[str]]:
    """The tenant's complete backups, oldest first, and the ids of the others: incomplete (no
    manifest) or with a manifest that is not one (each said with why, e.g. ``"2026… (no manifest)"``).

    Args:
        s3: a boto3 S3 client for the store.
    """
    folder = prefix(environment, code)
    ids = sorted(p["Prefix"][len(folder):].rstrip("/")
                 for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
                 for p in page.get("CommonPrefixes", []))
    backups, other = [], []
    for backup_id in (i for i in ids if ID_PATTERN.fullmatch(i)):
        where = f"s3://{bucket}/{folder}{backup_id}/manifest.json"
        try:
            body = s3.get_object(Bucket=bucket, Key=f"{folder}{backup_id}/manifest.json")["Body"].read()
            backups.append(parse_manifest(body, where, backup_id))
        except s3.exceptions.NoSuchKey:
            other.append(f"{backup_id} (incomplete: no manifest)")
        except BackupError as bad:
            other.append(f"{backup_id} ({bad})")
    return backups, other


def record_drill(s3: Any, bucket: str, environment: str, code: str, backup_id: str, result: str,
                 now: datetime | None = None) -> str:
    """Write the record of a successful restore drill of ``backup_id`` (``result``: the restore's
    one-line summary) as ``<prefix>drills/<UTC time>.json``; return its key. The evidence BIO2 8.13
    ("backup copies ... tested regularly") asks for, kept beside the backups it tested."""
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    key = f"{prefix(environment, code)}{DRILLS}{at.strftime('%Y%m%dT%H%M%SZ')}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"at": at.isoformat(timespec="seconds"), "backup": backup_id,
                                                           "result": result}).encode())
    return key


def last_drill(s3: Any, bucket: str, environment: str, code: str) -> dict[str, str] | None:
    """The newest readable restore drill record of the tenant (``at``, ``backup``, ``result``), or
    None; a record that is not one (not JSON, a field missing) is passed over."""
    folder = f"{prefix(environment, code)}{DRILLS}"
    keys = sorted((o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
                   for o in page.get("Contents", [])), reverse=True)
    for key in keys:
        try:
            record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            return {field: str(record[field]) for field in ("at", "backup", "result")}
        except (ValueError, KeyError, TypeError):
            continue
    return None


def parse_manifest(body: bytes, where: str, backup_id: str) -> Backup:
    """A `Backup` from the ``manifest.json`` in the folder of ``backup_id``.

    Raises:
        BackupError: ``body`` is not the JSON the dump script writes (``id`` equal to the folder's,
            ``created``, ``databases`` each with ``name``, integer ``bytes``, ``sha256`` and
            ``tables`` mapping names to integer rows).
    """
    try:
        data = json.loads(body)
        if str(data["id"]) != backup_id:
            raise ValueError(f"its id is {str(data['id'])[:40]!r}, not its folder's")
        databases = tuple(data["databases"])
        for db in databases:
            if not (isinstance(db["name"], str) and isinstance(db["bytes"], int) and isinstance(db["sha256"], str)
                    and isinstance(db["tables"], dict) and all(isinstance(n, int) for n in db["tables"].values())):
                raise ValueError("a database entry has a field of the wrong type")
        return Backup(id=backup_id, created=str(data["created"]), databases=databases)
    except (ValueError, KeyError, TypeError) as err:
        raise BackupError(f"{where} is not a backup manifest ({err})",
                          hint="a manifest is written by the tenant's backup job; was it changed by hand?") from None
