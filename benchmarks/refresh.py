#!/usr/bin/env python3
"""What refresh-before-up costs per stack: `cgkit up` and `cgkit preview` with and without `--no-refresh`.

Rows (wall seconds, median of --rounds), for GM0344 with all six apps and for a small tenant
(GM0307, objecttypen alone), nothing changed unless said:
  up-noop               `cgkit up` (refreshes first, the default)
  up-noop-no-refresh    `cgkit up --no-refresh`
  preview               `cgkit preview` (refreshes first, the default)
  preview-no-refresh    `cgkit preview --no-refresh`
  up-drift              `cgkit up` after the tenant's default-deny NetworkPolicy was deleted by hand
                        (the refresh finds it gone, the update creates it again)
The cost of the refresh is up-noop minus up-noop-no-refresh; the record also holds each tenant's
object count (the refresh reads every object back).

Usage: .venv/bin/python benchmarks/refresh.py [--rounds 3]
Uses the sandbox of $CGKIT_SANDBOX_DIR when it runs (and leaves it running), else starts one of
its own (.cgkit/bench-sandbox) and stops it at the end. Deploys into a scratch copy of the project
and destroys what it deployed. Writes benchmarks/results/refresh-<UTC date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CGKIT_SANDBOX_DIR", str(ROOT / ".cgkit" / "bench-sandbox"))

from kubernetes import client  # noqa: E402
from kubernetes import config as kube_config  # noqa: E402

from cgkit import sandbox  # noqa: E402
from cgkit.config import loader  # noqa: E402
from cgkit.render import render_municipality  # noqa: E402
from cgkit.scratch import copy_project  # noqa: E402
from tests.integration.small_fleet import small_tenant  # noqa: E402

_spec = importlib.util.spec_from_file_location("engine_benchmark", ROOT / "benchmarks" / "engine.py")
engine_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_benchmark)
timed, run_cgkit = engine_benchmark.timed, engine_benchmark.run_cgkit

ENV = "sandbox"
TENANTS = ("GM0344", "GM0307")


def one_round(code: str, net: client.NetworkingV1Api) -> dict[str, float]:
    """Measure every row once for ``code`` (deployed); leave it deployed and converged."""
    row = {"up-noop": timed(lambda: run_cgkit("up", "--env", ENV, code, "--yes")),
           "up-noop-no-refresh": timed(lambda: run_cgkit("up", "--env", ENV, code, "--yes", "--no-refresh")),
           "preview": timed(lambda: run_cgkit("preview", "--env", ENV, code)),
           "preview-no-refresh": timed(lambda: run_cgkit("preview", "--env", ENV, code, "--no-refresh"))}
    net.delete_namespaced_network_policy("default-deny", code.lower())
    row["up-drift"] = timed(lambda: run_cgkit("up", "--env", ENV, code, "--yes"))
    net.read_namespaced_network_policy("default-deny", code.lower())  # raises if the up did not put it back
    return row


def main() -> int:
    """Run the rounds and write the JSON record; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    own_sandbox = not sandbox.status().running
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(ROOT, Path(tmp))
        os.environ["CGKIT_PROJECT_DIR"] = str(project)
        if own_sandbox:
            sandbox.up()
        try:
            net = client.NetworkingV1Api(kube_config.new_client_from_config(
                config_file=str(sandbox.kubeconfig_path())))
            small_tenant(project, TENANTS[1])
            run_cgkit("up", "--env", ENV, "platform", "--yes")
            for code in TENANTS:
                objects = len(render_municipality(loader.load_municipality(project, ENV, code)))
                run_cgkit("up", "--env", ENV, code, "--yes")
                try:
                    rows = [one_round(code, net) for _ in range(rounds)]
                finally:
                    run_cgkit("destroy", "--env", ENV, code, "--allow-data-loss", code, "--yes")
                medians = {key: round(statistics.median(r[key] for r in rows), 2) for key in rows[0]}
                results[code] = {"objects": objects, "median_s": medians, "runs": rows,
                                 "refresh_cost_s": round(medians["up-noop"] - medians["up-noop-no-refresh"], 2)}
            run_cgkit("destroy", "--env", ENV, "platform", "--yes")
        finally:
            if own_sandbox:
                sandbox.down()
    record = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "rounds": rounds, "tenants": results}
    out = ROOT / "benchmarks" / "results" / f"refresh-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    for code, result in results.items():
        print(f"{code} ({result['objects']} objects)")
        for key, value in result["median_s"].items():
            print(f"  {key:20} {value:8.2f} s")
        print(f"  {'refresh cost':20} {result['refresh_cost_s']:8.2f} s   -> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
