"""Benchmark: how long the policy rules take over many municipalities' manifests.

Two inputs: ``--source rendered`` (default) renders the municipality program under Pulumi mocks for
the first N municipalities of the CBS list, each onboarded with the minimal file (code and domain),
exactly as the fleet test does; ``--source synthetic`` re-labels the hand-written reference tenant
(tests/policy/tenants/gm0344.yaml) N times and needs nothing but the policies. Each tenant is judged
with its own context, as `cgkit policy report` and the per-stack pack do, so stack rules run once
per tenant. Only the judging is timed; rendering or parsing is reported separately. Writes a JSON
record to benchmarks/results/.

    .venv/bin/python benchmarks/policy_check.py [--source rendered|synthetic] [--tenants 342] [--repeat 5]
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


def rendered_tenants(n: int) -> list[tuple[Context, list[dict]]]:
    """The municipality program's manifests for the first ``n`` CBS codes (minimal files, sandbox env)."""
    import tempfile

    from cgkit import policy_context
    from cgkit.config import loader
    from cgkit.onboard import onboard
    from cgkit.render import render_municipality

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        env_dir = root / "environments" / "sandbox"
        (env_dir / "municipalities").mkdir(parents=True)
        (env_dir / "environment.yaml").write_text((ROOT / "environments/sandbox/environment.yaml").read_text())
        for code in cbs_codes()[:n]:
            onboard(root, "sandbox", code)
            cfg = loader.load_municipality(root, "sandbox", code)
            out.append((policy_context.context_of(cfg), render_municipality(cfg)))
    return out


def run(tenants: list[tuple[Context, list[dict]]]) -> tuple[float, list]:
    """Seconds to evaluate every tenant, and all findings."""
    start = time.perf_counter()
    findings = [f for ctx, objects in tenants for f in evaluate(objects, ctx)]
    return time.perf_counter() - start, findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("rendered", "synthetic"), default="rendered")
    parser.add_argument("--tenants", type=int, default=342)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rules = catalog.load().rules
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tenants = (rendered_tenants if args.source == "rendered" else synthetic_tenants)(args.tenants)
    prepare_s = time.perf_counter() - t0
    objects = sum(len(o) for _, o in tenants)
    timings, findings = zip(*(run(tenants) for _ in range(args.repeat)))
    record = {
        "benchmark": "policy_check", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.machine(), "source": args.source,
        "tenants": len(tenants), "objects": objects, "rules": len(rules), "repeat": args.repeat,
        "catalog_load_s": round(load_s, 4), "prepare_s (render or parse, not judged)": round(prepare_s, 2),
        "evaluate_s": {"min": round(min(timings), 4), "median": round(statistics.median(timings), 4),
                       "max": round(max(timings), 4)},
        "per_tenant_ms": round(1000 * statistics.median(timings) / len(tenants), 3),
        "per_object_us": round(1e6 * statistics.median(timings) / objects, 1),
        "findings": len(findings[0]), "blocking": sum(f.blocking for f in findings[0]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"policy_check-{dt.date.today().isoformat()}-{args.source}-{len(tenants)}.json"
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
