#!/usr/bin/env python3
"""What a shared S3 state backend costs per stack against the project's file backend, side by side.

Rows (wall seconds, median of --rounds) for a small tenant (GM0307, objecttypen alone) on the real
node, each round once on the file backend and once on the sandbox's object store (versitygw on
127.0.0.1, so the figure is the engine's own S3 traffic, not a network's latency):
  up        `cgkit up` of the new tenant (every object created, every await)
  up-noop   `cgkit up` again (refresh, nothing to change)
  preview   `cgkit preview`
  destroy   `cgkit destroy --allow-data-loss`
and the ratio s3/file per row. The platform stack is deployed once on the file backend and copied
to the bucket with `cgkit state migrate` (a tenant reads it through a StackReference on its own
backend). The bucket's object count and bytes after the rounds are recorded too.

Then, on the object store, a fleet of --fleet small tenants (default 20) rolled out twice: once by one
runner (`cgkit fleet up --parallel P`), once by two runners started together on the same backend
(`--shard 1/2` and `--shard 2/2`, each `--parallel P`), each rollout destroyed after; recorded are the
wall seconds of each, the stacks each runner updated (the union must be the fleet, each once) and
the ratio 2-shards/1-runner; and once by one runner with --in-cluster (each wave an Indexed Job,
--parallel P pods). On this one machine the runners and the pods share its cores, so the ratios say
what sharding and pods cost, not what a second machine buys.

Usage: .venv/bin/python benchmarks/state_backend.py [--rounds 3] [--fleet 20] [--parallel 2]
Uses the sandbox of $CGKIT_SANDBOX_DIR when it runs (and leaves it running), else starts one of its
own (.cgkit/bench-sandbox) and stops it at the end. Writes
benchmarks/results/state-backend-<UTC date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CGKIT_SANDBOX_DIR", str(ROOT / ".cgkit" / "bench-sandbox"))

import yaml  # noqa: E402

from cgkit import objectstore, runner_image, sandbox  # noqa: E402
from cgkit.node_manifests import NODE_IP  # noqa: E402
from cgkit.config.loader import environment_file  # noqa: E402
from cgkit.scratch import copy_project  # noqa: E402
from cgkit.gemeenten import all_gemeenten  # noqa: E402
from tests.integration.small_fleet import make_small_fleet, small_tenant  # noqa: E402

_spec = importlib.util.spec_from_file_location("engine_benchmark", ROOT / "benchmarks" / "engine.py")
engine_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_benchmark)
timed, run_cgkit = engine_benchmark.timed, engine_benchmark.run_cgkit

ENV = "sandbox"
CODE = "GM0307"
BUCKET = "cgkit-state"


def one_round() -> dict[str, float]:
    """Every row once for the tenant on the backend the environment file names now."""
    return {"up": timed(lambda: run_cgkit("up", "--env", ENV, CODE, "--yes")),
            "up-noop": timed(lambda: run_cgkit("up", "--env", ENV, CODE, "--yes")),
            "preview": timed(lambda: run_cgkit("preview", "--env", ENV, CODE)),
            "destroy": timed(lambda: run_cgkit("destroy", "--env", ENV, CODE, "--allow-data-loss", CODE, "--yes"))}


def use_backend(project: Path, backend: str | None) -> None:
    """Point the environment file's state.backend at ``backend`` (None: the file backend)."""
    path = environment_file(project, ENV)
    environment = yaml.safe_load(path.read_text())
    environment.pop("state", None)
    if backend:
        environment["state"] = {"backend": backend}
    path.write_text(yaml.safe_dump(environment, sort_keys=False))


def fleet_runners(project: Path, runners: list[list[str]], parallel: int) -> dict:
    """Start one `cgkit fleet up` per entry of ``runners`` (its extra arguments) at once, wait for all;
    return the wall seconds and, per runner, its exit status and the stacks its report says it
    updated. Each run's report is the newest folder under the project's .cgkit/runs."""
    runs_dir = project / ".cgkit" / "runs"
    before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
    start = time.monotonic()
    procs = [subprocess.Popen([str(ROOT / ".venv" / "bin" / "cgkit"), "fleet", "up", "--env", ENV, "--yes",
                               "--parallel", str(parallel), *extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for extra in runners]
    statuses = [proc.wait() for proc in procs]
    wall = round(time.monotonic() - start, 2)
    updated = [sorted(s["stack"] for s in json.loads((run / "report.json").read_text())["stacks"]
                      if s["status"] == "succeeded")
               for run in sorted(set(runs_dir.iterdir()) - before)]
    return {"wall_s": wall, "exit": statuses, "updated": updated}


def fleet_rows(project: Path, size: int, parallel: int, on_row=lambda _rows: None) -> dict:
    """The fleet of ``size`` small tenants rolled out by one runner, by two shards, and by one runner
    whose stacks run as pods (--in-cluster, its image built before the clock starts); each destroyed
    after (volumes returned to the pool before each rollout); ``on_row`` gets the rows so far after each."""
    for other in (project / "environments" / ENV / "municipalities").glob("*.yaml"):
        other.unlink()  # the fleet is exactly the small tenants (the checked-in files hold full ones)
    make_small_fleet(project, list(all_gemeenten())[:size], waves=[])
    runner_image.build(root=project)
    rows = {}
    for name, runners in (("1-runner", [[]]), ("2-shards", [["--shard", "1/2"], ["--shard", "2/2"]]),
                          ("in-cluster", [["--in-cluster"]])):
        sandbox.up(pv_count=max(100, 3 * size))
        rows[name] = fleet_runners(project, runners, parallel)
        run_cgkit("fleet", "destroy", "--env", ENV, "--parallel", "4", "--allow-data-loss", ENV, "--yes")
        on_row(rows)
    rows["ratio_incluster_over_1runner"] = round(rows["in-cluster"]["wall_s"] / rows["1-runner"]["wall_s"], 2)
    return rows



def write_record(args: argparse.Namespace, runs: dict, blobs: dict, fleet: dict) -> Path:
    """Write (again) benchmarks/results/state-backend-<UTC date>.json with what is measured so far;
    return its path."""
    medians = {name: {key: round(statistics.median(r[key] for r in rows), 2) for key in rows[0]}
               for name, rows in runs.items()}
    ratios = {key: round(medians["s3"][key] / medians["file"][key], 2) for key in medians["file"]}
    if "1-runner" in fleet and "2-shards" in fleet:
        fleet = {**fleet, "ratio_2shards_over_1runner": round(fleet["2-shards"]["wall_s"] / fleet["1-runner"]["wall_s"], 2)}
    record = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "rounds": args.rounds, "tenant": CODE,
              "median_s": medians, "ratio_s3_over_file": ratios, "runs": runs,
              "bucket_after": {"objects": len(blobs), "bytes": sum(len(b) for b in blobs.values())},
              "fleet": {"size": args.fleet, "parallel": args.parallel, **fleet}}
    out = ROOT / "benchmarks" / "results" / f"state-backend-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def main() -> int:
    """Run the rounds and write the JSON record (after the rounds and after each fleet row); print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=20, help="tenants in the fleet rows (0: none)")
    parser.add_argument("--parallel", type=int, default=2, help="--parallel of each fleet runner")
    args = parser.parse_args()
    rounds = args.rounds
    fleet: dict = {}
    own_sandbox = not sandbox.status().running
    runs: dict[str, list[dict[str, float]]] = {"file": [], "s3": []}
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        os.environ["CGKIT_PROJECT_DIR"] = str(project)
        store = objectstore.ObjectStore(Path(tmp) / "store")
        if own_sandbox:
            sandbox.up()
        try:
            store.up(objectstore.free_port(), buckets=[BUCKET], also_on=(NODE_IP,))  # the bridge: for the runner pods
            os.environ.update(store.client_env())
            small_tenant(project, CODE)
            run_cgkit("up", "--env", ENV, "platform", "--yes")
            os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(project / ".cgkit" / "passphrase")
            run_cgkit("state", "migrate", "--env", ENV, "--to", store.backend_url(BUCKET))
            for _ in range(rounds):
                for name, backend in (("file", None), ("s3", store.backend_url(BUCKET))):
                    use_backend(project, backend)
                    runs[name].append(one_round())
            blobs = store.objects(BUCKET)
            write_record(args, runs, blobs, fleet)  # the per-stack rows are kept if the fleet fails
            if args.fleet:
                fleet = fleet_rows(project, args.fleet, args.parallel,
                                   on_row=lambda rows: write_record(args, runs, blobs, rows))
            use_backend(project, None)
            run_cgkit("destroy", "--env", ENV, "platform", "--yes")
        finally:
            store.down()
            if own_sandbox:
                sandbox.down()
    out = write_record(args, runs, blobs, fleet)
    record = json.loads(out.read_text())
    medians, ratios = record["median_s"], record["ratio_s3_over_file"]
    print(f"{'row':10} {'file s':>8} {'s3 s':>8} {'s3/file':>8}")
    for key, ratio in ratios.items():
        print(f"{key:10} {medians['file'][key]:8.2f} {medians['s3'][key]:8.2f} {ratio:8.2f}")
    for name in ("1-runner", "2-shards", "in-cluster"):
        if name in fleet:
            print(f"fleet {name:9} {fleet[name]['wall_s']:8.2f} s  exit {fleet[name]['exit']}")
    print(f"-> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
