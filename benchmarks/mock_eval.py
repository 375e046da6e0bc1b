#!/usr/bin/env python3
"""Benchmark the municipality program under Pulumi mocks for all 342 municipalities.

Each municipality is onboarded with the minimal file (code and domain; the sandbox environment's
defaults: size S, all six apps, in-cluster database) in a scratch environment, loaded, and its
program evaluated with cgkit.render (no cluster, no CLI), side by side in each run: one tenant after
another in this process, then all of them over ``render_many``'s process pool (one worker per core,
what the 342-municipality test and `cgkit policy report` use). Reports per run: wall time for all,
seconds per tenant (median over tenants, one process), objects per tenant, the pool's wall time;
over the runs: the medians, and the peak resident memory of this process (ru_maxrss). Target
(issue 14): all 342 in <= 60 s on a 2-core machine.

Usage: .venv/bin/python benchmarks/mock_eval.py [--runs 3] [--tenants 342]
Writes benchmarks/results/mock_eval-<UTC date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgkit.config import loader  # noqa: E402
from cgkit.gemeenten import all_gemeenten  # noqa: E402
from cgkit.onboard import onboard  # noqa: E402
from cgkit.render import render_many, render_municipality  # noqa: E402


def scratch_environment(folder: Path, codes: list[str]) -> list:
    """Onboard ``codes`` into a copy of the sandbox environment under ``folder``; return their configs."""
    env = folder / "environments" / "sandbox"
    (env / "municipalities").mkdir(parents=True)
    shutil.copy(ROOT / "environments/sandbox/environment.yaml", env / "environment.yaml")
    for code in codes:
        onboard(folder, "sandbox", code)
    return [loader.load_municipality(folder, "sandbox", code) for code in codes]


def one_run(configs: list) -> dict:
    """Evaluate every config once; return wall seconds, per-tenant seconds and object counts."""
    per_tenant, objects = [], []
    start = time.perf_counter()
    for cfg in configs:
        t0 = time.perf_counter()
        objects.append(len(render_municipality(cfg)))
        per_tenant.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    pooled = render_many(configs)
    pool_wall = time.perf_counter() - start
    assert [len(m) for m in pooled] == objects, "the pool renders what one process renders"
    return {"wall_s": round(wall, 2),
            "per_tenant_median_s": round(statistics.median(per_tenant), 3),
            "per_tenant_max_s": round(max(per_tenant), 3),
            "objects_per_tenant": sorted(set(objects)),
            "pool_workers": os.cpu_count(), "pool_wall_s": round(pool_wall, 2)}


def main() -> int:
    """Run and record the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=342)
    args = parser.parse_args()
    codes = list(all_gemeenten())[: args.tenants]
    with tempfile.TemporaryDirectory() as tmp:
        configs = scratch_environment(Path(tmp), codes)
        runs = [one_run(configs) for _ in range(args.runs)]
    record = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 2), "tenants": len(codes), "runs": runs,
              "median_wall_s": statistics.median(r["wall_s"] for r in runs),
              "median_per_tenant_s": statistics.median(r["per_tenant_median_s"] for r in runs),
              "median_pool_wall_s": statistics.median(r["pool_wall_s"] for r in runs),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    out = ROOT / "benchmarks" / "results" / f"mock_eval-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
