"""Fixtures for the component and program tests (helpers live in rendered.py)."""

from __future__ import annotations

import pytest

from rendered import Manifests, all_apps, render


@pytest.fixture(scope="module")
def all_on() -> Manifests:
    """All six apps, size M, in-cluster database, groups for both roles."""
    return render(all_apps(size="M", access={"admins": ["utrecht-admins"], "viewers": ["utrecht-auditors"]}))
