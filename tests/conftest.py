"""Shared fixtures: the project root and a scratch copy of an environment to write config into."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deadlines import LIVE_TEST_S, TEST_S

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Bound every test (pytest-timeout): a live-tier test by LIVE_TEST_S, any other by TEST_S,
    unless the test or its module names its own ``pytest.mark.timeout``."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            live = item.get_closest_marker("integration") or item.get_closest_marker("infra")
            item.add_marker(pytest.mark.timeout(LIVE_TEST_S if live else TEST_S))


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The checkout's root (holds Pulumi.yaml and environments/)."""
    return ROOT


@pytest.fixture
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root in tmp_path with the sandbox environment file and no municipality files.

    The environment file has no ``waves:`` (its canary, GM0344, has no file here, which validate
    reports); the `with_waves` fixture puts them back. CGKIT_PROJECT_DIR names it, so a value the
    integration tier's session left set (its scratch project) cannot redirect a command here.
    """
    monkeypatch.setenv("CGKIT_PROJECT_DIR", str(tmp_path))
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    env = tmp_path / "environments" / "sandbox"
    (env / "municipalities").mkdir(parents=True)
    text = (ROOT / "environments" / "sandbox" / "environment.yaml").read_text()
    (env / "environment.yaml").write_text(text[:text.index("\nwaves:")] + "\n")
    return tmp_path


@pytest.fixture
def with_waves(scratch_root: Path):
    """A function that gives the scratch project the sandbox environment file as checked in, waves
    included (call it once the municipalities the waves name have files)."""
    def restore() -> None:
        shutil.copy(ROOT / "environments" / "sandbox" / "environment.yaml",
                    scratch_root / "environments" / "sandbox" / "environment.yaml")
    return restore
