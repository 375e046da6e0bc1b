#!/usr/bin/env python3
"""Time `cgkit fleet preview`, `up` and `destroy` over N small tenants on the sandbox at several
--parallel values: wall time, peak memory of the whole process tree, time per stack.

Usage: .venv/bin/python benchmarks/fleet.py --stacks 10 --parallel 1 2 4

Works in a scratch copy of the project (own state backend) against the running sandbox
($CGKIT_SANDBOX_DIR or .cgkit/sandbox); the sandbox must not hold a platform stack of another
state. Before each `up` the sandbox's volume pool is topped up to 3 per tenant (at least 100),
which also returns the volumes of destroyed tenants. Each tenant runs objecttypen alone (tests/integration/small_fleet.py). Per --parallel value:
preview (all creates), up (creates), destroy; the platform stack is deployed first and destroyed
last. Writes benchmarks/results/fleet-<UTC date>-<N>stacks-p<P1-P2..>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cgkit import sandbox  # noqa: E402
from cgkit.cli.app import main as cgkit  # noqa: E402
from cgkit.gemeenten import all_gemeenten  # noqa: E402
from cgkit.scratch import copy_project  # noqa: E402
from tests.integration.small_fleet import ENV, make_small_fleet  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Samples the resident memory of this process and all its descendants every ``interval_s``;
    ``peak_mib`` is the largest sum seen."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s, self.peak_mib, self._stop = interval_s, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mib = max(self.peak_mib, tree_rss_mib(os.getpid()))


def tree_rss_mib(root_pid: int) -> float:
    """Return the summed RSS (MiB) of ``root_pid`` and its descendants, from /proc."""
    parents, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return round(sum(rss.get(pid, 0) for pid in tree) / 2**20, 1)


def fleet(verb: str, parallel: int, runs: Path) -> dict:
    """Run one `cgkit fleet` command; return its measurements (report read from the new run dir)."""
    before = set(runs.iterdir()) if runs.is_dir() else set()
    load_before = round(os.getloadavg()[0], 2)
    start = time.monotonic()
    with PeakMemory() as memory:
        status = cgkit(["fleet", verb, "--env", ENV, "--parallel", str(parallel)]
                       + (["--yes"] if verb in ("up", "destroy") else [])
                       + (["--allow-data-loss", ENV] if verb == "destroy" else []))
    wall = round(time.monotonic() - start, 2)
    (run_dir,) = set(runs.iterdir()) - before
    report = json.loads((run_dir / "report.json").read_text())
    per_stack = [s["duration_s"] for s in report["stacks"]]
    return {"verb": verb, "parallel": parallel, "exit": status, "wall_s": wall, "peak_mib": memory.peak_mib,
            "stacks": len(per_stack), "totals": report["totals"],
            "stack_s": {"mean": round(statistics.mean(per_stack), 2), "median": round(statistics.median(per_stack), 2),
                        "max": round(max(per_stack), 2)},
            "wall_per_stack_s": round(wall / len(per_stack), 2),
            # the machine is shared: the 1-minute load average before and after says how much
            "load_1m": [load_before, round(os.getloadavg()[0], 2)]}


def main() -> int:
    """Deploy the platform, measure each --parallel value, destroy; write the results file."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--stacks", type=int, default=10)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--verbs", nargs="+", default=["preview", "up", "destroy"])
    args = ap.parse_args()
    scratch = copy_project(ROOT, Path(tempfile.mkdtemp(prefix="cgkit-fleet-bench-")))
    for old in (scratch / "environments" / ENV / "municipalities").glob("*.yaml"):
        old.unlink()
    make_small_fleet(scratch, list(all_gemeenten())[:args.stacks], waves=[])
    os.environ["CGKIT_PROJECT_DIR"] = str(scratch)
    record = {"started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "stacks": args.stacks, "apps_per_tenant": ["objecttypen"], "runs": []}
    parallels = "-".join(str(p) for p in args.parallel)
    out = ROOT / "benchmarks" / "results" / f"fleet-{dt.date.today().isoformat()}-{args.stacks}stacks-p{parallels}.json"
    assert cgkit(["up", "--env", ENV, "platform", "--yes"]) == 0, "platform up failed"
    try:
        for parallel in args.parallel:
            for verb in args.verbs:
                if verb == "up":  # a destroyed tenant leaves its volumes Released; up returns them to the pool
                    sandbox.up(pv_count=max(100, 3 * args.stacks))
                measured = fleet(verb, parallel, scratch / ".cgkit" / "runs")
                record["runs"].append(measured)
                print(json.dumps(measured), file=sys.stderr, flush=True)
                out.write_text(json.dumps(record, indent=2) + "\n")
    finally:
        cgkit(["fleet", "destroy", "--env", ENV, "--parallel", "4", "--allow-data-loss", ENV, "--yes"])
        cgkit(["destroy", "--env", ENV, "platform", "--yes"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
