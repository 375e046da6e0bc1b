"""Benchmark: how long the policy rules take over many municipalities' manifests.

Until the programs can be rendered for all 342 municipalities, the input is the reference tenant
(tests/policy/tenants/gm0344.yaml, 17 objects) re-labelled for N municipalities from the CBS list.
Each tenant is judged with its own context, as `cgkit policy report` and the per-stack pack do, so
stack rules run once per tenant. Writes a JSON record to benchmarks/results/.

    .venv/bin/python benchmarks/policy_check.py [--tenants 342] [--repeat 5]

To benchmark real output later, replace `synthetic_tenants` with the rendered manifests per code.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policies import catalog  # noqa: E402
from policies.evaluate import evaluate  # noqa: E402
from policies.manifests import SAFE_LOADER  # noqa: E402
from policies.model import Context  # noqa: E402

REFERENCE = ROOT / "tests" / "policy" / "tenants" / "gm0344.yaml"
CODES = ROOT / "cgkit" / "data" / "gemeenten.csv"


def cbs_codes() -> list[str]:
    """Every CBS municipality code in the kit's list (GM0014, ...)."""
    with CODES.open(encoding="utf-8") as f:
        return [row[0] for row in csv.reader(f) if row and row[0].startswith("GM")]


def synthetic_tenants(n: int) -> list[tuple[Context, list[dict]]]:
    """The reference tenant re-labelled for the first ``n`` CBS codes: (context, manifests) pairs."""
    text = REFERENCE.read_text(encoding="utf-8")
    out = []
    for code in cbs_codes()[:n]:
        domain = f"{code.lower()}.sandbox.cgkit.test"
        docs = text.replace("gm0344", code.lower()).replace("GM0344", code).replace("utrecht.sandbox.cgkit.test", domain)
        objects = [d for d in yaml.load_all(docs, Loader=SAFE_LOADER) if d]
        out.append((Context(gemeente_code=code, domain=domain, allowed_registries=("docker.io",)), objects))
    return out


def run(tenants: list[tuple[Context, list[dict]]]) -> tuple[float, int]:
    """Seconds to evaluate every tenant, and the number of findings (expected 0)."""
    start = time.perf_counter()
    findings = sum(len(evaluate(objects, ctx)) for ctx, objects in tenants)
    return time.perf_counter() - start, findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=342)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rules = catalog.load().rules
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tenants = synthetic_tenants(args.tenants)
    parse_s = time.perf_counter() - t0
    objects = sum(len(o) for _, o in tenants)
    timings, findings = zip(*(run(tenants) for _ in range(args.repeat)))
    record = {
        "benchmark": "policy_check", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.machine(), "input": "synthetic (reference tenant x N)",
        "tenants": len(tenants), "objects": objects, "rules": len(rules), "repeat": args.repeat,
        "catalog_load_s": round(load_s, 4), "yaml_parse_s": round(parse_s, 4),
        "evaluate_s": {"min": round(min(timings), 4), "median": round(statistics.median(timings), 4),
                       "max": round(max(timings), 4)},
        "per_tenant_ms": round(1000 * statistics.median(timings) / len(tenants), 3),
        "per_object_us": round(1e6 * statistics.median(timings) / objects, 1),
        "findings": findings[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"policy_check-{dt.date.today().isoformat()}-{len(tenants)}.json"
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
