"""A runner pod of an in-cluster fleet run: ``python -m cgkit.fleet.pod`` runs one stack and reports.

The pod (cgkit/fleet/in_cluster.py ``wave_manifests``) gets its verb, environment and options from
``CGKIT_FLEET_*``, the wave's codes from ``/run/cgkit/stacks/codes`` and picks line
``$JOB_COMPLETION_INDEX``. Its image holds the project at ``/opt/cgkit/project`` (read-only);
the engine needs a writable project folder (the stack's ``Pulumi.<stack>.yaml``, ``.cgkit/``), so
the project is copied to ``/work/project`` and the stack config from the wave's Secret put beside
it. The stack runs exactly as on one machine (``engine_runner.stack_runner``), except that it never
creates a stack or a secret (they would die with the pod). The engine's log (secrets masked) goes
to stdout; the result goes to the termination message as JSON::

    {"status": "succeeded", "changes": {"same": 40}, "duration_s": 31.2}
    {"status": "failed", "error": "...", "error_kind": "policy-violation", "duration_s": 12.0}

Exit status 0 when the stack succeeded, 1 when it failed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

PROJECT_IMAGE = Path("/opt/cgkit/project")
WORK = Path("/work/project")
CODES = Path("/run/cgkit/stacks/codes")
SECRETS = Path("/run/cgkit/secrets")
TERMINATION_LOG = Path("/dev/termination-log")
#: Kubernetes keeps at most 4096 bytes of a termination message.
MESSAGE_LIMIT = 4096


def prepare_project(image: Path = PROJECT_IMAGE, work: Path = WORK, secrets: Path = SECRETS) -> Path:
    """Copy the image's project to ``work`` (``.venv`` linked, not copied) and the stack configs of
    the wave's Secret beside it; return ``work``."""
    shutil.copytree(image, work, symlinks=True, ignore=shutil.ignore_patterns(".venv"), dirs_exist_ok=True)
    (work / ".venv").unlink(missing_ok=True)
    (work / ".venv").symlink_to(image / ".venv")
    for config in secrets.glob("Pulumi.*.yaml"):
        shutil.copyfile(config, work / config.name)
    return work


def main() -> int:
    """Run this pod's stack; write the result; return the exit status."""
    index = int(os.environ["JOB_COMPLETION_INDEX"])
    code = CODES.read_text().split()[index]
    verb, env = os.environ["CGKIT_FLEET_VERB"], os.environ["CGKIT_FLEET_ENV"]
    os.chdir(prepare_project())
    from cgkit.fleet import report
    from cgkit.fleet.engine_runner import stack_runner
    from cgkit.fleet.scheduler import first_error_line
    from cgkit.stackops import RunOptions

    run_dir = WORK / ".cgkit" / "pod-run"
    run_dir.mkdir(parents=True, exist_ok=True)
    options = RunOptions(**json.loads(os.environ.get("CGKIT_FLEET_OPTIONS", "{}")))
    start = time.monotonic()
    try:
        changes = stack_runner(verb, env, run_dir, options, create=False)(code)
        result = {"status": "succeeded", "changes": changes}
    except Exception as error:  # noqa: BLE001 - any failure is this stack's, reported as on one machine
        result = {"status": "failed", "error": first_error_line(error)[:MESSAGE_LIMIT // 2],
                  "error_kind": getattr(error, "reference", "internal-error")}
    result["duration_s"] = round(time.monotonic() - start, 3)
    log = report.log_file(run_dir, env, code)
    if log.exists():
        sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
    sys.stdout.flush()
    TERMINATION_LOG.write_text(json.dumps(result), encoding="utf-8")  # < MESSAGE_LIMIT: the error is cut
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
