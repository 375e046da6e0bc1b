#!/usr/bin/env python3
"""Run the fuzzer (tests/unit/test_fuzz.py) with a large budget and record the result.

The unit test run tries a few dozen inputs per property; this runs each property with
``--examples`` inputs (default 10,000) in its own pytest process (one after the other, or all at
once with ``--parallel``) and records per property: the examples that passed (counted by the test
itself, CGKIT_FUZZ_REPORT), the seconds they took, the process's wall time, and pass or fail with
the end of pytest's output (the failing input). Randomised (not derandomised) so that every run
explores new inputs.

Usage: .venv/bin/python benchmarks/fuzz.py [--examples 10000] [--only municipality_files] [--parallel]
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


def start(prop: str, examples: int, counts: Path) -> tuple[subprocess.Popen, float]:
    """Start one property in its own pytest process; it appends its counts to ``counts``."""
    env = {**os.environ, "CGKIT_FUZZ_EXAMPLES": str(examples), "CGKIT_FUZZ_REPORT": str(counts)}
    process = subprocess.Popen([sys.executable, "-m", "pytest", f"tests/unit/test_fuzz.py::test_fuzz_{prop}", "-q",
                                "-p", "no:cacheprovider"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    return process, time.monotonic()


def record(prop: str, process: subprocess.Popen, began: float, counts: Path) -> dict:
    """Wait for a property's process; return its record (the last count it wrote)."""
    output = process.communicate()[0]
    lines = [json.loads(line) for line in counts.read_text().splitlines() if line.strip()] if counts.exists() else []
    last = lines[-1] if lines else {"examples": 0, "seconds": 0.0}
    return {"property": prop, "ok": process.returncode == 0, "wall_s": round(time.monotonic() - began, 1),
            "examples_passed": last["examples"], "examples_s": last["seconds"],
            "output_tail": output.splitlines()[-40:] if process.returncode else output.splitlines()[-3:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--only", choices=PROPERTIES, action="append")
    parser.add_argument("--parallel", action="store_true", help="Run the properties at once (each in a process).")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        props = args.only or PROPERTIES
        counts = {prop: Path(scratch) / f"{prop}.jsonl" for prop in props}
        if args.parallel:
            running = {prop: start(prop, args.examples, counts[prop]) for prop in props}
            records = [record(prop, *running[prop], counts[prop]) for prop in props]
        else:
            records = [record(prop, *start(prop, args.examples, counts[prop]), counts[prop]) for prop in props]
    for r in records:
        print(f"{r['property']}: {'ok' if r['ok'] else 'FAILED'}, {r['examples_passed']} examples passed, "
              f"{r['examples_s']} s", flush=True)
    result = {"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 1), "examples_asked": args.examples,
              "parallel": args.parallel, "properties": records}
    out = ROOT / "benchmarks" / "results" / f"fuzz-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
