#!/usr/bin/env python3
"""Time the sandbox lifecycle: `up` from nothing, `up` again (idempotent, running), `down`.

Usage: .venv/bin/python benchmarks/sandbox_updown.py [--rounds N]

Needs the toolchain built and no sandbox running (it is deleted at the end of each round).
Appends one JSON record per round to benchmarks/results/sandbox-<UTC date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cgkit import sandbox  # noqa: E402


def timed(fn) -> float:
    """Run ``fn()``; return wall seconds."""
    start = time.monotonic()
    fn()
    return round(time.monotonic() - start, 2)


def main() -> int:
    """Run the rounds and record them; exit 1 if a sandbox is already running."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if sandbox.is_running(ROOT):
        print("a sandbox is running; run `cgkit sandbox down` first", file=sys.stderr)
        return 1
    out = ROOT / "benchmarks" / "results" / f"sandbox-{dt.date.today().isoformat()}.json"
    runs = json.loads(out.read_text()) if out.exists() else []
    for _ in range(args.rounds):
        record = {"started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "cores": os.cpu_count()}
        record["up_cold_s"] = timed(lambda: sandbox.up(root=ROOT))
        record["up_again_s"] = timed(lambda: sandbox.up(root=ROOT))
        record["down_s"] = timed(lambda: sandbox.down(root=ROOT))
        record["processes_left"] = len(sandbox.processes(ROOT))
        runs.append(record)
        print(json.dumps(record))
    out.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
