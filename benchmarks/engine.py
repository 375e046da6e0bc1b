#!/usr/bin/env python3
"""Benchmark the real engine on the sandbox, side by side with its yardsticks, in one run.

Rows (wall seconds, median of --rounds):
  toolchain-warm      tools/build-toolchain with everything built (the cold build is recorded by
                      benchmarks/toolchain_build.py; its latest record is shown beside this run)
  up                  `cgkit up` of GM0344 with all six apps, from nothing (platform already up)
  up-noop             `cgkit up` again, nothing changed
  preview             `cgkit preview`, nothing changed (policy pack applied, as in the product)
  destroy             `cgkit destroy` of GM0344
  empty-program-up    the same engine (CLI, language host, file backend) on a Python program
                      that declares nothing: the engine's fixed cost
  kubectl-apply       `kubectl apply --server-side` of the same objects (rendered under mocks),
                      then waiting until every Deployment is Available, every StatefulSet ready,
                      every Job complete, every PVC Bound and every Ingress has a load-balancer
                      address
The ratio up / kubectl-apply is the kit's overhead over plain Kubernetes tooling. The sandbox has
its real node (since 2026-12-02): `up` and `kubectl-apply` end when every pod really is Ready.
With --images, the run first builds the sandbox's images cold (an empty cache of its own) and
warm, and records those beside the rest.

Usage: .venv/bin/python benchmarks/engine.py [--rounds 3] [--images]
Starts a sandbox of its own (.cgkit/bench-sandbox) and stops it at the end. Writes
benchmarks/results/engine-<UTC date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CGKIT_SANDBOX_DIR", str(ROOT / ".cgkit" / "bench-sandbox"))

from cgkit import engine, sandbox, toolchain  # noqa: E402
from cgkit.cli.app import main as cgkit  # noqa: E402
from cgkit.config import loader  # noqa: E402
from cgkit.render import render_municipality  # noqa: E402
from cgkit.scratch import copy_project  # noqa: E402

ENV, CODE = "sandbox", "GM0344"
QUIET = {"stdout": subprocess.DEVNULL}


def timed(step: Callable[[], object]) -> float:
    """Run ``step``; return wall seconds (2 decimals)."""
    start = time.monotonic()
    step()
    return round(time.monotonic() - start, 2)


def must(status: int, what: str) -> None:
    """Raise when a cgkit call did not exit 0."""
    if status != 0:
        raise RuntimeError(f"{what} exited {status}")


def run_cgkit(*args: str) -> None:
    """Run cgkit in-process with its output discarded; raise on a non-zero exit."""
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            must(cgkit(list(args)), "cgkit " + " ".join(args))
        finally:
            sys.stdout = stdout


def kubectl(*args: str) -> None:
    """Run the toolchain's kubectl against the sandbox; raise on failure."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig_path())}
    subprocess.run([str(toolchain.bin_dir() / "kubectl"), *args], check=True, env=env, **QUIET)


def kubectl_apply(manifests: Path) -> None:
    """Apply the rendered tenant server-side and wait for it to be ready, as the provider's awaits do."""
    ns = CODE.lower()
    kubectl("apply", "--server-side", "--field-manager=bench", "-f", str(manifests))
    kubectl("wait", "-n", ns, "--for=condition=Available", "deployment", "--all", "--timeout=300s")
    kubectl("rollout", "status", "-n", ns, "statefulset", "--timeout=300s")
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job", "--all", "--timeout=300s")
    kubectl("wait", "-n", ns, "--for=jsonpath={.status.phase}=Bound", "pvc", "--all", "--timeout=300s")
    kubectl("wait", "-n", ns, "--for=jsonpath={.status.loadBalancer.ingress[0].ip}", "ingress", "--all",
            "--timeout=300s")


def empty_program_up(work: Path) -> float:
    """Time `pulumi up` of a local Python program that declares nothing (same engine and backend)."""
    (work / "Pulumi.yaml").write_text("name: empty\nruntime:\n  name: python\n  options:\n"
                                      f"    virtualenv: {ROOT / '.venv'}\n")
    (work / "__main__.py").write_text("")
    env = {**os.environ, **engine.engine_env(engine.EngineSettings(root=work))}
    subprocess.run(["pulumi", "stack", "init", "bench"], cwd=work, env=env, check=True, **QUIET)
    return timed(lambda: subprocess.run(["pulumi", "up", "--yes", "-s", "bench"], cwd=work, env=env,
                                        check=True, **QUIET))


def one_round(project: Path, manifests: Path, scratch: Path) -> dict[str, float]:
    """Measure every row once; leave the sandbox without the tenant."""
    row = {"toolchain-warm": timed(lambda: subprocess.run([sys.executable, str(ROOT / "tools/build-toolchain")],
                                                          check=True, **QUIET))}
    row["up"] = timed(lambda: run_cgkit("up", "--env", ENV, CODE, "--yes"))
    row["up-noop"] = timed(lambda: run_cgkit("up", "--env", ENV, CODE, "--yes"))
    row["preview"] = timed(lambda: run_cgkit("preview", "--env", ENV, CODE))
    row["destroy"] = timed(lambda: run_cgkit("destroy", "--env", ENV, CODE, "--allow-data-loss", CODE, "--yes"))
    row["empty-program-up"] = empty_program_up(Path(tempfile.mkdtemp(dir=scratch)))
    row["kubectl-apply"] = timed(lambda: kubectl_apply(manifests))
    kubectl("delete", "namespace", CODE.lower(), "--wait=true", "--timeout=300s")
    return row


def render_tenant(project: Path, target: Path) -> Path:
    """Write GM0344's objects (rendered under mocks, fake secrets) as one multi-document YAML file."""
    objects = render_municipality(loader.load_municipality(project, ENV, CODE))
    target.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return target


def latest_cold_build() -> dict | None:
    """The newest record of benchmarks/toolchain_build.py, if any."""
    records = sorted((ROOT / "benchmarks" / "results").glob("toolchain-*.json"))
    if not records:
        return None
    data = json.loads(records[-1].read_text())
    return data[-1] if isinstance(data, list) else data


def image_builds() -> dict[str, float]:
    """Build the sandbox images into an empty cache (cold: mmdebstrap downloads everything), then
    again (warm: the key is built, nothing to do); return both wall times."""
    cache = tempfile.mkdtemp(prefix="cgkit-images-")
    env = {**os.environ, "CGKIT_IMAGES_DIR": cache}
    cmd = [str(ROOT / ".venv" / "bin" / "cgkit"), "sandbox", "images"]
    try:
        cold = timed(lambda: subprocess.run(cmd, env=env, check=True, **QUIET))
        warm = timed(lambda: subprocess.run(cmd, env=env, check=True, **QUIET))
    finally:
        subprocess.run(["rm", "-rf", cache], check=False)
    return {"cold": cold, "warm": warm}


def main() -> int:
    """Run the rounds and write the JSON record; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", action="store_true", help="also build the sandbox images cold and warm")
    args = parser.parse_args()
    rounds = args.rounds
    images = image_builds() if args.images else None
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        project = copy_project(ROOT, scratch / "project")
        os.environ["CGKIT_PROJECT_DIR"] = str(project)
        sandbox_up = timed(lambda: sandbox.up())
        try:
            run_cgkit("up", "--env", ENV, "platform", "--yes")
            manifests = render_tenant(project, scratch / "gm0344.yaml")
            object_count = len([d for d in yaml.safe_load_all(manifests.read_text()) if d])
            rows = [one_round(project, manifests, scratch) for _ in range(rounds)]
        finally:
            sandbox.down()
    medians = {key: round(statistics.median(r[key] for r in rows), 2) for key in rows[0]}
    record = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "rounds": rounds, "sandbox_up_s": sandbox_up, "median_s": medians, "runs": rows,
              "objects": object_count,
              "ratio_up_to_kubectl": round(medians["up"] / medians["kubectl-apply"], 2),
              "cold_build": latest_cold_build(), "image_build_s": images}
    out = ROOT / "benchmarks" / "results" / f"engine-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    for key, value in medians.items():
        print(f"{key:18} {value:8.2f} s")
    print(f"{'up / kubectl':18} {record['ratio_up_to_kubectl']:8.2f} x   -> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
