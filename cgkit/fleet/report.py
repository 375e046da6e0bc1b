"""A fleet run's directory: ``.cgkit/runs/<run-id>/`` with ``report.json`` and ``<stack>.log`` per stack.

``report.json`` (``REPORT_VERSION`` 1)::

    {"version": 1, "run_id": "20261129T183000Z-up-sandbox-3fa2", "verb": "up", "env": "sandbox",
     "started_at": "2026-11-29T18:30:00+00:00", "duration_s": 81.2, "parallel": 4,
     "resumed_from": null, "interrupted": false, "options": {"preview_only": false, ...},
     "totals": {"succeeded": 9, "failed": 1, "skipped": 0, "not-started": 0},
     "waves": [{"name": "canary", "stacks": ["GM0344"], "max_failure_rate": 0.0, "failed": 0,
                "failure_rate": 0.0, "stopped": false}, ...],
     "stacks": [{"code": "GM0344", "stack": "sandbox.gm0344", "wave": "canary", "status": "succeeded",
                 "changes": {"create": 3, "same": 40}, "changed": true, "duration_s": 12.3,
                 "error": null, "error_kind": null, "started_at": "...", "log": "sandbox.gm0344.log"}, ...]}

A stack's ``changes`` are the engine's op counts; for preview and up they also hold what the refresh
before them found (``refresh-drifted``, ``refresh-gone``: objects changed or deleted outside cgkit,
which the up put back). The logs hold the engine's output as it ran (secrets masked: the engine
runs without show-secrets).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cgkit.conventions import stack_name
from cgkit.config.yamlsource import BULK_LIMITS, read_text
from cgkit.errors import CgkitError, ConfigError
from cgkit.fleet.scheduler import UNFINISHED, FleetRun, Status
from cgkit.project import state_dir
from cgkit.writer import write_text

REPORT_VERSION = 1
REPORT_FILE = "report.json"
#: The statuses counted in a report's totals (a stack still pending or running shows in ``stacks``).
END_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.NOT_STARTED)


class RunNotFoundError(CgkitError):
    """``--resume`` named a run that has no readable report."""

    reference = "fleet-run-not-found"


@dataclass
class RunInfo:
    """What a run was asked to do (the report's header).

    Attributes:
        run_id: the run directory's name. verb: preview | up | refresh | destroy. env: environment.
        parallel: worker pool size. started_at: ISO-8601 UTC. resumed_from: the run id it resumes.
        options: the verb's flags (preview_only, skip_policy, refresh) and the shard ("K/N" or None).
    """

    run_id: str
    verb: str
    env: str
    parallel: int
    started_at: str = field(default_factory=lambda: _now())
    resumed_from: str | None = None
    options: dict[str, bool | str | None] = field(default_factory=dict)


def runs_dir(root: Path) -> Path:
    """Return ``<root>/.cgkit/runs`` (created)."""
    path = state_dir(root) / "runs"
    path.mkdir(exist_ok=True)
    return path


def new_run(root: Path, verb: str, env: str, parallel: int, **extra) -> tuple[RunInfo, Path]:
    """Create a fresh run directory; return its RunInfo and path. ``extra``: RunInfo's optional fields."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    info = RunInfo(run_id=f"{stamp}-{verb}-{env}-{secrets.token_hex(2)}", verb=verb, env=env,
                   parallel=parallel, **extra)
    path = runs_dir(root) / info.run_id
    path.mkdir(mode=0o700)
    return info, path


def log_file(run_dir: Path, env: str, code: str) -> Path:
    """Return the engine log of one stack in a run: ``<run_dir>/<env>.<code>.log``."""
    return run_dir / f"{stack_name(env, code)}.log"


def build_report(info: RunInfo, run: FleetRun, duration_s: float) -> dict:
    """Return the report (the dict written as report.json; shape in the module doc)."""
    return {
        "version": REPORT_VERSION, "run_id": info.run_id, "verb": info.verb, "env": info.env,
        "started_at": info.started_at, "duration_s": round(duration_s, 3), "parallel": info.parallel,
        "resumed_from": info.resumed_from, "interrupted": run.interrupted, "options": info.options,
        "totals": {status.value: run.count(status) for status in END_STATUSES},
        "waves": [{"name": w.plan.name, "stacks": list(w.plan.codes), "max_failure_rate": w.plan.max_failure_rate,
                   "failed": w.failed, "failure_rate": round(w.failure_rate, 4), "stopped": w.stopped}
                  for w in run.waves],
        "stacks": [{"code": r.code, "stack": stack_name(info.env, r.code), "wave": r.wave, "status": r.status.value,
                    "changes": r.changes, "changed": r.changed, "duration_s": r.duration_s, "error": r.error,
                    "error_kind": r.error_kind, "started_at": r.started_at,
                    "log": f"{stack_name(info.env, r.code)}.log"}
                   for r in run.results],
    }


def write_report(run_dir: Path, report: dict, root: Path | None = None) -> Path:
    """Write ``report`` as ``<run_dir>/report.json`` through `cgkit.writer.write_text` (atomically, no
    link followed inside ``root``, default ``run_dir``); return its path."""
    return write_text(root or run_dir, run_dir / REPORT_FILE, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def load_report(root: Path, run: str) -> dict:
    """Return the report of ``run``: a run id under ``.cgkit/runs``, or a path to a run dir or report.json.

    Raises:
        RunNotFoundError: no such run, or its report is unreadable (the message lists the latest runs).
    """
    candidates = [Path(run), Path(run) / REPORT_FILE, runs_dir(root) / run / REPORT_FILE]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        latest = sorted(p.name for p in runs_dir(root).iterdir() if (p / REPORT_FILE).is_file())[-5:]
        raise RunNotFoundError(f"no fleet run '{run}' with a {REPORT_FILE}",
                               hint=f"recent runs: {', '.join(latest) or 'none'} (in {runs_dir(root)})")
    try:
        report = json.loads(read_text(path, path, None, BULK_LIMITS))
    except ConfigError as bad:
        raise RunNotFoundError(bad.render()) from None
    except ValueError as bad:  # json.JSONDecodeError, or a number too long to convert
        raise RunNotFoundError(f"{path} is not a fleet report: not JSON ({bad})") from None
    problem = _report_problem(report)
    if problem:
        raise RunNotFoundError(f"{path} is not a fleet report: {problem}",
                               hint="give the run id of a report cgkit wrote (cgkit fleet ... wrote it under .cgkit/runs)")
    return report


def _report_problem(report: object) -> str | None:
    """What makes ``report`` unusable for --resume (the fields resume reads), or None."""
    if not isinstance(report, dict):
        return "the top level is not an object"
    if not isinstance(report.get("env"), str) or not isinstance(report.get("stacks"), list):
        return "env (text) and stacks (a list) are required"
    statuses = {status.value for status in Status}
    for i, stack in enumerate(report["stacks"]):
        if not isinstance(stack, dict) or not isinstance(stack.get("code"), str) \
                or not re.fullmatch(r"GM\d{4}", stack["code"]) or stack.get("status") not in statuses:
            return (f"stacks[{i}] needs a code (GM and four digits) and a status "
                    f"({', '.join(sorted(statuses))})")
    return None


def unfinished_codes(report: dict) -> list[str]:
    """Return the codes of a report's stacks that did not succeed (what ``--resume`` reruns), sorted."""
    return sorted(s["code"] for s in report["stacks"] if Status(s["status"]) in UNFINISHED)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
