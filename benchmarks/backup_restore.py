#!/usr/bin/env python3
"""Backup and restore time against database size, on the real node, side by side in one run.

One small tenant (GM0307, objecttypen alone) backed up to the sandbox's object store on the node's
bridge. For each size in --rows (default 10000, 100000, 1000000 rows of ~100 bytes in one table of
its database, written before the clock starts) it records the wall seconds of
  backup    `cgkit backup now` (a Job: pg_dump, manifest, upload, retention; waited for)
  drill     `cgkit restore --from <that backup> --drill` (a Job: fetch, SHA-256, pg_restore into a
            fresh database, every table's rows compared, the copy dropped)
and the dump's size in bytes. Each figure includes the Job's pod start on the node (image present),
which is the floor under both; the smallest size shows it.

Usage: .venv/bin/python benchmarks/backup_restore.py [--rows 10000 100000 1000000]
Uses the sandbox of $CGKIT_SANDBOX_DIR when it runs (and leaves it running), else starts one of its
own (.cgkit/bench-sandbox) and stops it at the end. Writes
benchmarks/results/backup-restore-<UTC date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CGKIT_SANDBOX_DIR", str(ROOT / ".cgkit" / "bench-sandbox"))

import yaml  # noqa: E402

from cgkit import objectstore, sandbox  # noqa: E402
from cgkit.cli.app import main as cgkit  # noqa: E402
from cgkit.config.loader import environment_file  # noqa: E402
from cgkit.node_manifests import NODE_IP  # noqa: E402
from cgkit.scratch import copy_project  # noqa: E402
from tests.integration.small_fleet import small_tenant  # noqa: E402
from tests.integration.test_backup_restore import psql  # noqa: E402

ENV, CODE, BUCKET, DB = "sandbox", "GM0307", "cgkit-backups", "objecttypen"


def run(*args: str) -> tuple[float, str]:
    """Run cgkit in-process; return (wall seconds, stdout); raise on a non-zero exit."""
    start = dt.datetime.now()
    with redirect_stdout(io.StringIO()) as captured:
        status = cgkit(list(args))
    if status != 0:
        raise RuntimeError(f"cgkit {' '.join(args)} exited {status}: {captured.getvalue()[-500:]}")
    return round((dt.datetime.now() - start).total_seconds(), 2), captured.getvalue()



def one_size(rows: int) -> dict:
    """Fill the table with ``rows`` rows, back up, drill; the figures of that size."""
    psql(CODE.lower(), "DROP TABLE IF EXISTS bench; CREATE TABLE bench (id bigint PRIMARY KEY, body text); "
                       f"INSERT INTO bench SELECT i, repeat(md5(i::text), 3) FROM generate_series(1, {rows}) i", DB)
    backup_s, said = run("backup", "now", "--env", ENV, CODE)
    backup_id = said.split(": ", 1)[1].split(",")[0]
    size = int(said.split(", ", 1)[1].split(" bytes")[0])
    drill_s, _ = run("restore", "--env", ENV, CODE, "--from", backup_id, "--drill")
    return {"rows": rows, "dump_bytes": size, "backup_s": backup_s, "drill_s": drill_s}


def main() -> int:
    """Run every size and write the JSON record; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    own_sandbox = not sandbox.status().running
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        os.environ["CGKIT_PROJECT_DIR"] = str(project)
        if own_sandbox:
            sandbox.up()
        store = objectstore.ObjectStore(sandbox.paths().objectstore)
        try:
            store.up(objectstore.free_port(), also_on=(NODE_IP,))
            path = environment_file(project, ENV)
            environment = yaml.safe_load(path.read_text())
            environment["backups"] = {"endpoint": f"http://{NODE_IP}:{store.endpoint.rsplit(':', 1)[1]}",
                                      "bucket": BUCKET}
            path.write_text(yaml.safe_dump(environment, sort_keys=False))
            small_tenant(project, CODE)
            run("up", "--env", ENV, "platform", "--yes")
            run("backup", "grant", "--env", ENV, CODE)
            run("up", "--env", ENV, CODE, "--yes")
            results = [one_size(rows) for rows in args.rows]
            run("destroy", "--env", ENV, CODE, "--allow-data-loss", CODE, "--yes")
            run("destroy", "--env", ENV, "platform", "--yes")
        finally:
            store.down()
            if own_sandbox:
                sandbox.down()
    record = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "tenant": CODE, "database": DB,
              "sizes": results}
    out = ROOT / "benchmarks" / "results" / f"backup-restore-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{'rows':>9} {'dump MB':>9} {'backup s':>9} {'drill s':>9}")
    for r in results:
        print(f"{r['rows']:>9} {r['dump_bytes'] / 2**20:>9.1f} {r['backup_s']:>9.2f} {r['drill_s']:>9.2f}")
    print(f"-> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
