#!/usr/bin/env python3
"""Time tools/build-toolchain and record the result in benchmarks/results/.

Usage: benchmarks/toolchain_build.py --label cold|warm [--force]

Runs the build script once (wall clock, per family as the script reports it), notes the machine
(cores, Go version) and how warm Go's caches were at the start (bytes in GOCACHE and GOMODCACHE),
and appends one JSON record per run to benchmarks/results/toolchain-<UTC date>.json.
For a cold build, empty GOCACHE first (e.g. `go clean -cache`) and remove the key's bin dir.
Exit code: the build script's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def du(path: str) -> int:
    """Return the bytes under ``path`` (0 if absent)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def go_env(name: str) -> str:
    """Return `go env NAME`."""
    return subprocess.run(["go", "env", name], capture_output=True, text=True).stdout.strip()


def main() -> int:
    """Run the build once and append the record; return its exit code."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True, help="cold or warm (what you prepared)")
    ap.add_argument("--force", action="store_true", help="pass --force to the build script")
    args = ap.parse_args()
    record = {
        "label": args.label,
        "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(), "machine": platform.machine(),
        "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip(),
        "gocache_bytes_before": du(go_env("GOCACHE")),
        "gomodcache_bytes_before": du(go_env("GOMODCACHE")),
    }
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        timings = Path(tmp.name)
    cmd = [str(ROOT / "tools" / "build-toolchain"), "--timings", str(timings)]
    cmd += ["--force"] if args.force else []
    start = time.monotonic()
    rc = subprocess.run(cmd).returncode
    record["wall_seconds"] = round(time.monotonic() - start, 1)
    record["exit_code"] = rc
    if rc == 0:
        record["build"] = json.loads(timings.read_text())
    timings.unlink(missing_ok=True)
    out = ROOT / "benchmarks" / "results" / f"toolchain-{dt.date.today().isoformat()}.json"
    runs = json.loads(out.read_text()) if out.exists() else []
    runs.append(record)
    out.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"recorded {args.label}: {record['wall_seconds']}s -> {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
