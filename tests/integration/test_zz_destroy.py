"""The session's last module: GM0344 and the platform destroyed, as a user would, and nothing left.

Runs after every other module (tests/integration/conftest.py LAST): the session keeps both stacks
deployed until here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from cgkit import engine
from cgkit.conventions import LABEL_GEMEENTE, stack_name
from tests.deadlines import GONE_S, wait_until
from tests.integration.conftest import CODE, ENV, cgkit

pytestmark = pytest.mark.integration
NS = CODE.lower()


def test_destroy_removes_the_tenant_and_then_the_platform_completely(deployed: Path, api: client.ApiClient) -> None:
    assert cgkit("destroy", "--env", ENV, CODE, "--allow-data-loss", CODE, "--yes") == 0
    core = client.CoreV1Api(api)
    wait_until(lambda: NS not in {n.metadata.name for n in core.list_namespace().items}, GONE_S,
               f"namespace {NS} gone after destroy")
    leftovers = client.RbacAuthorizationV1Api(api).list_cluster_role_binding(label_selector=f"{LABEL_GEMEENTE}={CODE}")
    assert not leftovers.items
    stack = engine.select_stack(engine.EngineSettings(root=deployed), stack_name(ENV, CODE))
    assert stack.export_stack().deployment.get("resources") in (None, [])
    assert cgkit("destroy", "--env", ENV, "platform", "--yes") == 0
