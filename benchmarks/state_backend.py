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

Usage: .venv/bin/python benchmarks/state_backend.py [--rounds 3]
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
import socket
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CGKIT_SANDBOX_DIR", str(ROOT / ".cgkit" / "bench-sandbox"))

import yaml  # noqa: E402

from cgkit import objectstore, sandbox  # noqa: E402
from cgkit.config.loader import environment_file  # noqa: E402
from cgkit.scratch import copy_project  # noqa: E402
from tests.integration.small_fleet import small_tenant  # noqa: E402

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    """Run the rounds and write the JSON record; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    own_sandbox = not sandbox.status().running
    runs: dict[str, list[dict[str, float]]] = {"file": [], "s3": []}
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(ROOT, Path(tmp) / "project")
        os.environ["CGKIT_PROJECT_DIR"] = str(project)
        store = objectstore.ObjectStore(Path(tmp) / "store")
        if own_sandbox:
            sandbox.up()
        try:
            store.up(free_port(), buckets=[BUCKET])
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
            use_backend(project, None)
            run_cgkit("destroy", "--env", ENV, "platform", "--yes")
        finally:
            store.down()
            if own_sandbox:
                sandbox.down()
    medians = {name: {key: round(statistics.median(r[key] for r in rows), 2) for key in rows[0]}
               for name, rows in runs.items()}
    ratios = {key: round(medians["s3"][key] / medians["file"][key], 2) for key in medians["file"]}
    record = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "rounds": rounds, "tenant": CODE,
              "median_s": medians, "ratio_s3_over_file": ratios, "runs": runs,
              "bucket_after": {"objects": len(blobs), "bytes": sum(len(b) for b in blobs.values())}}
    out = ROOT / "benchmarks" / "results" / f"state-backend-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{'row':10} {'file s':>8} {'s3 s':>8} {'s3/file':>8}")
    for key, ratio in ratios.items():
        print(f"{key:10} {medians['file'][key]:8.2f} {medians['s3'][key]:8.2f} {ratio:8.2f}")
    print(f"-> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
