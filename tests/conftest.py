"""Shared fixtures: the project root and a scratch copy of an environment to write config into."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The checkout's root (holds Pulumi.yaml and environments/)."""
    return ROOT


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    """A project root in tmp_path with the sandbox environment file and no municipality files."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    env = tmp_path / "environments" / "sandbox"
    (env / "municipalities").mkdir(parents=True)
    shutil.copy(ROOT / "environments" / "sandbox" / "environment.yaml", env / "environment.yaml")
    return tmp_path
