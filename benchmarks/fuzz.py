#!/usr/bin/env python3
"""Run the fuzzer (tests/unit/test_fuzz.py) with a large budget and record the result.

The unit test run tries a few dozen inputs per property; this runs each property with
``--examples`` inputs (default 10,000) in its own pytest process, one after the other, and records
per property: the examples run (counted by the test itself, CGKIT_FUZZ_REPORT), the seconds they
took, the process's wall time, and pass or fail with the end of pytest's output (the failing input). Randomised (not derandomised) so that every run
explores new inputs.

Usage: .venv/bin/python benchmarks/fuzz.py [--examples 10000] [--only municipality_files]
Writes benchmarks/results/fuzz-<UTC date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROPERTIES = ("municipality_files", "environment_files", "manifests",
              "a_privileged_pod_in_lists_of_any_depth_is_always_caught")


def run(prop: str, examples: int) -> dict:
    """Run one property in a fresh pytest process; return its record."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as counts:
        env = {**os.environ, "CGKIT_FUZZ_EXAMPLES": str(examples), "CGKIT_FUZZ_REPORT": counts.name}
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", f"tests/unit/test_fuzz.py::test_fuzz_{prop}", "-q",
                               "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        lines = [json.loads(line) for line in counts.read().splitlines() if line.strip()]
    return {"property": prop, "ok": done.returncode == 0, "wall_s": round(wall, 1),
            "examples_run": sum(r["examples"] for r in lines), "examples_s": sum(r["seconds"] for r in lines),
            "output_tail": done.stdout.splitlines()[-40:] if done.returncode else done.stdout.splitlines()[-3:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--only", choices=PROPERTIES, action="append")
    args = parser.parse_args()
    records = []
    for prop in args.only or PROPERTIES:
        record = run(prop, args.examples)
        records.append(record)
        print(f"{prop}: {'ok' if record['ok'] else 'FAILED'}, {record['examples_run']} examples, "
              f"{record['wall_s']} s", flush=True)
    result = {"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 1), "examples_asked": args.examples, "properties": records}
    out = ROOT / "benchmarks" / "results" / f"fuzz-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
