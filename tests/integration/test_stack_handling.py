"""How cgkit opens stacks, with the real Pulumi CLI and a file backend (no cluster needed): it never
changes Pulumi's selected stack, and processes opening one new stack at once create it and its
secrets once (issue 10)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cgkit import engine, toolchain
from cgkit.scratch import copy_project

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NAMES = ["objecttypen-db-password", "objecttypen-secret-key", "postgres-admin-password"]

#: One opener, as open_stack does it: under the stack's lock, select or create, then the secrets.
OPEN = """
import hashlib, json, sys
from pathlib import Path
from cgkit import engine
root, name, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
settings = engine.EngineSettings(root=root)
with engine.stack_lock(root, name):
    stack = engine.existing_stack(settings, name) or engine.select_stack(settings, name)
    created = engine.ensure_secrets(stack, names)
values = {k: v.value for k, v in stack.get_all_config().items()}
print(json.dumps({"created": created, "digest": hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest(),
                  "keys": sorted(values)}))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    missing = [status.name for status in toolchain.doctor() if status.name == "pulumi" and not status.ok]
    assert not missing, "the Pulumi CLI is not built: run tools/setup"
    return copy_project(ROOT, tmp_path)


def plain_pulumi(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **engine.engine_env(engine.EngineSettings(root=project))}
    return subprocess.run(["pulumi", *args, "--non-interactive"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cgkit_never_changes_the_selected_stack(project: Path) -> None:
    assert plain_pulumi(project, "stack", "init", "sandbox.platform").returncode == 0  # plain pulumi selects it
    settings = engine.EngineSettings(root=project)
    created = engine.select_stack(settings, "sandbox.gm0344")
    engine.ensure_secrets(created, NAMES)
    assert engine.existing_stack(settings, "sandbox.gm0344").name == "sandbox.gm0344"
    assert engine.existing_stack(settings, "sandbox.gm0363") is None
    assert plain_pulumi(project, "stack", "--show-name").stdout.strip() == "sandbox.platform"
    assert "sandbox.gm0363" not in plain_pulumi(project, "stack", "ls").stdout


def test_openers_of_a_new_stack_at_once_create_it_and_its_secrets_once(project: Path) -> None:
    runs = [subprocess.Popen([sys.executable, "-c", OPEN, str(project), "sandbox.gm0599", ",".join(NAMES)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, [err for _, err in results]
    seen = [json.loads(out) for out, _ in results]
    assert sorted(len(s["created"]) for s in seen) == [0, 0, 0, len(NAMES)]  # one opener generated them
    assert len({s["digest"] for s in seen}) == 1  # and every opener reads the same values
    assert seen[0]["keys"] == sorted(f"cgkit:{n}" for n in NAMES)
    config = (project / "Pulumi.sandbox.gm0599.yaml").read_text()
    assert config.count("encryptionsalt") == 1 and all(f"cgkit:{n}" in config for n in NAMES)
    values = engine.existing_stack(engine.EngineSettings(root=project), "sandbox.gm0599").get_all_config()
    assert hashlib.sha256(json.dumps({k: v.value for k, v in values.items()}, sort_keys=True).encode()).hexdigest() \
        == seen[0]["digest"]
