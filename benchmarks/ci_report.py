#!/usr/bin/env python3
"""Summarise a tools/test run from its evidence: per tier the tests, failures and summed test time,
and the slowest tests (setup, call and teardown together, as JUnit counts them).

Reads ``<evidence>/<tier>.xml`` (JUnit, written by tools/test into .cgkit/ci/) and prints Markdown,
for benchmarks/results/ci-<date>.md. Wall times of the tiers and of the whole run are what
tools/test and `time .ci/run` print; this adds where the time went.

Usage: .venv/bin/python benchmarks/ci_report.py [--evidence .cgkit/ci] [--slowest 10]
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tier_rows(xml: Path) -> tuple[dict, list[tuple[float, str]]]:
    """(totals of one tier's JUnit file, [(seconds, test id)]) of its test cases."""
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = [(float(c.get("time", 0)), f"{c.get('classname')}::{c.get('name')}") for c in suite.iter("testcase")]
    totals = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    totals["seconds"] = round(sum(t for t, _ in cases), 1)
    return totals, cases


def main() -> int:
    """Print the Markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", type=Path, default=ROOT / ".cgkit" / "ci")
    parser.add_argument("--slowest", type=int, default=10)
    args = parser.parse_args()
    print("| tier | tests | failures | errors | skipped | summed test time (s) |\n| --- | --- | --- | --- | --- | --- |")
    slowest: dict[str, list[tuple[float, str]]] = {}
    for tier in ("fast", "live"):
        xml = args.evidence / f"{tier}.xml"
        if not xml.is_file():
            continue
        totals, cases = tier_rows(xml)
        print(f"| {tier} | {totals['tests']} | {totals['failures']} | {totals['errors']} | {totals['skipped']} "
              f"| {totals['seconds']} |")
        slowest[tier] = sorted(cases, reverse=True)[: args.slowest]
    for tier, cases in slowest.items():
        print(f"\nSlowest {len(cases)} of the {tier} tier (s):\n")
        print("\n".join(f"- {seconds:.1f} `{test}`" for seconds, test in cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
