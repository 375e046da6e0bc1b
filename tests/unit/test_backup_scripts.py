"""The backup upload script's retention, run for real under /bin/sh with a stand-in `aws` on PATH
that records what it is asked to do (the store's side is the integration tier's restore drill)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from components.backup import SCRIPTS

FAKE_AWS = """#!/bin/sh
echo "$*" >> "$AWS_LOG"
case "$*" in *list-objects-v2*) printf '%s' "$LISTING" ;; esac
"""


def _run_upload(tmp_path: Path, existing: list[str], new: str, keep_daily: int, keep_weekly: int,
                incomplete: tuple[str, ...] = (), stray: tuple[str, ...] = (), **extra: str) -> tuple[list[str], str]:
    """Run upload.sh for backup ``new`` with ``existing`` backups in the bucket (and ``incomplete``
    ones without a manifest, and ``stray`` keys); return the ids it deleted and its output."""
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    (work / new).mkdir(parents=True)
    (work / new / "openzaak.dump").write_bytes(b"x" * 10)
    (work / new / "manifest.json").write_text("{}")
    script = tmp_path / "upload.sh"
    script.write_text(SCRIPTS["upload.sh"])
    prefix = "sandbox/gm0344/"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "AWS_LOG": str(tmp_path / "aws.log"), "S3_ENDPOINT": "http://s3",
           "BUCKET": "b", "PREFIX": prefix, "WORK": str(work), "KEEP_DAILY": str(keep_daily),
           "KEEP_WEEKLY": str(keep_weekly),
           "LISTING": "\t".join([f"{prefix}{i}/{f}" for i in [*existing, new] for f in ("openzaak.dump", "manifest.json")]
                                + [f"{prefix}{i}/openzaak.dump" for i in incomplete] + [f"{prefix}{k}" for k in stray]),
           **extra}
    done = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "aws.log").read_text().splitlines()
    deleted = [c.split(prefix)[1].rstrip("/") for c in calls if " s3 rm " in f" {c} "]
    return sorted(deleted), done.stdout


def _ids(start: dt.datetime, days: int, per_day: int = 1) -> list[str]:
    return [(start - dt.timedelta(days=d, hours=h)).strftime("%Y%m%dT%H%M%SZ") for d in range(days) for h in range(per_day)]


def test_the_newest_of_each_day_and_week_stay_and_the_rest_go(tmp_path):
    newest = dt.datetime(2026, 12, 7, 2, 30)  # a Monday
    existing = _ids(newest - dt.timedelta(days=1), 60)  # one a day for 60 days before
    deleted, out = _run_upload(tmp_path, existing, newest.strftime("%Y%m%dT%H%M%SZ"), keep_daily=7, keep_weekly=4)
    kept = sorted(set(existing) - set(deleted))
    days = [k for k in kept if k >= "20261201"]
    assert len(days) == 6, "with today's, the newest 7 days"
    weeks = {dt.datetime.strptime(k[:8], "%Y%m%d").isocalendar()[:2] for k in kept}
    assert len(weeks) == 3 and len(kept) == 8, kept  # this week's is today's; the 3 weeks before keep their Sunday
    assert "uploaded" in out and "delete" in out


def test_several_backups_a_day_keep_only_the_newest_of_the_day(tmp_path):
    newest = dt.datetime(2026, 12, 7, 23, 0)
    existing = _ids(newest - dt.timedelta(hours=1), 1, per_day=5)  # five earlier the same day
    deleted, _ = _run_upload(tmp_path, existing, newest.strftime("%Y%m%dT%H%M%SZ"), keep_daily=3, keep_weekly=0)
    assert deleted == sorted(existing)


def test_the_backup_just_made_is_never_deleted(tmp_path):
    newest = "20261207T023000Z"
    deleted, out = _run_upload(tmp_path, [], newest, keep_daily=1, keep_weekly=0)
    assert deleted == [] and f"keep {newest}" in out


def test_an_incomplete_backup_takes_no_slot_and_goes_once_it_is_stale(tmp_path):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    stamp = lambda t: t.strftime("%Y%m%dT%H%M%SZ")  # noqa: E731
    complete = [stamp(now - dt.timedelta(days=1))]
    stale, fresh = stamp(now - dt.timedelta(hours=7)), stamp(now - dt.timedelta(hours=1))
    deleted, out = _run_upload(tmp_path, complete, stamp(now), keep_daily=2, keep_weekly=0,
                               incomplete=(stale, fresh), stray=("20261301T000000Z/x", "notes.txt", "drills/a.json"))
    assert deleted == [stale], out
    assert f"keep {complete[0]} (daily)" in out, "the incomplete ones took no daily slot"
    assert "leave 20261301T000000Z (not a date)" not in out and "20261301T000000Z" not in deleted


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_script_is_valid_posix_shell(tmp_path, name):
    script = tmp_path / name
    script.write_text(SCRIPTS[name])
    assert subprocess.run(["/bin/sh", "-n", str(script)], capture_output=True, text=True).returncode == 0


FAKE_PG = {
    "pg_isready": "#!/bin/sh\nexit 0\n",
    "psql": "#!/bin/sh\nprintf 'objecttypen\\nopenzaak\\n'\n",
    "pg_dump": "#!/bin/sh\nfor a; do case $a in --file=*) printf 'dump of %s' \"$*\" > \"${a#--file=}\" ;; esac; done\n",
    # The data of a dump as pg_restore prints it: a COPY block per table, a quoted name, an empty table.
    "pg_restore": "#!/bin/sh\n[ -z \"${PG_RESTORE_FAILS:-}\" ] || exit 1\ncat <<'DATA'\nSET x = 1;\n"
                  "COPY public.zaak (id, titel) FROM stdin;\n1\tzaak 1\n2\tzaak 2\n\\.\n\n"
                  "COPY public.\"Odd \"\"na\\me\"\"\" (x) FROM stdin;\n1\n2\n3\n\\.\n"
                  "COPY public.spatial_ref_sys (srid) FROM stdin;\n\\.\nDATA\n",
}


def _run_dump(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    work.mkdir()
    for name, text in FAKE_PG.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "dump.sh").write_text(SCRIPTS["dump.sh"])
    return subprocess.run(["/bin/sh", str(tmp_path / "dump.sh")], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "WORK": str(work), "CODE": "GM0344",
                               "ENVIRONMENT": "sandbox", **env})


def test_the_manifest_counts_each_tables_rows_from_the_dump_and_is_json(tmp_path):
    done = _run_dump(tmp_path)
    assert done.returncode == 0, done.stderr
    backup, = (tmp_path / "work").iterdir()
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["id"] == backup.name and manifest["code"] == "GM0344"
    assert [d["name"] for d in manifest["databases"]] == ["objecttypen", "openzaak"]
    first = manifest["databases"][0]
    assert first["tables"] == {"public.zaak": 2, 'public."Odd ""na\\me"""': 3, "public.spatial_ref_sys": 0}
    dump = (backup / "objecttypen.dump").read_bytes()
    assert first["bytes"] == len(dump) and first["sha256"] == hashlib.sha256(dump).hexdigest()


def test_a_dump_whose_data_cannot_be_read_fails_the_backup(tmp_path):
    done = _run_dump(tmp_path, PG_RESTORE_FAILS="1")
    assert done.returncode != 0


def test_an_export_archives_each_media_volume_into_the_manifest(tmp_path):
    from cgkit.offboard import parse_export

    assert _run_dump(tmp_path).returncode == 0
    media = tmp_path / "media"
    (media / "openzaak-media" / "media").mkdir(parents=True)
    (media / "openzaak-media" / "media" / "besluit.pdf").write_bytes(b"%PDF besluit")
    (media / "openzaak-media" / "private-media").mkdir()
    (media / "objecten-media" / "lost+found").mkdir(parents=True)  # ext4's, root-only: not the tenant's
    (media / "objecten-media" / "lost+found" / "#1234").write_text("fsck")
    (tmp_path / "media.sh").write_text(SCRIPTS["media.sh"])
    done = subprocess.run(["/bin/sh", str(tmp_path / "media.sh")], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "WORK": str(tmp_path / "work"), "MEDIA": str(media)})
    assert done.returncode == 0, done.stderr
    backup, = (tmp_path / "work").iterdir()
    export = parse_export((backup / "manifest.json").read_bytes(), f"x/{backup.name}/manifest.json", backup.name)
    assert export.claims == ("objecten-media", "openzaak-media") and export.databases == ("objecttypen", "openzaak")
    archive = next(f for f in export.files if f.file == "media-openzaak-media.tar")
    body = (backup / archive.file).read_bytes()
    assert (archive.bytes, archive.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    files = json.loads((backup / "manifest.json").read_text())["media"]
    assert {m["claim"]: m["files"] for m in files} == {"objecten-media": 0, "openzaak-media": 1}
    assert b"lost+found" not in (backup / "media-objecten-media.tar").read_bytes()


def test_an_export_upload_deletes_nothing(tmp_path):
    newest = dt.datetime(2026, 12, 7, 2, 30)
    deleted, out = _run_upload(tmp_path, _ids(newest - dt.timedelta(days=1), 30), newest.strftime("%Y%m%dT%H%M%SZ"),
                               keep_daily=1, keep_weekly=0, RETAIN_ALL="1")
    assert deleted == [] and "uploaded" in out and "keep" not in out
