"""Integration fixtures: a scratch copy of the project deployed by the real engine to the sandbox.

The copy (``deployed``) has its own state backend and stack config, so tests never touch the
checkout's state; it shares the checkout's .venv and the running sandbox cluster. The session
deploys the platform and GM0344 (every app) once and keeps them up for every module: a module
that needs a deployed tenant uses GM0344 (and puts back what it changed), one that needs a tenant
of its own deploys a small one (objecttypen alone, tests/integration/small_fleet.py) and destroys
it. Two modules run last, in this order whatever their names: test_zz_sandbox_heals (it kills the
sandbox's processes under the deployed tenant) and test_zz_destroy (it destroys GM0344 and the
platform, and asserts what is left). The session's teardown destroys both stacks again in case a
test failed before that.

Needs: the toolchain built and the sandbox running (tools/test does both). Missing either is a
failure with a message, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from cgkit import sandbox, toolchain
from cgkit.cli.app import main
from cgkit.scratch import copy_project

ROOT = Path(__file__).resolve().parents[2]
ENV = "sandbox"
CODE = "GM0344"


#: The modules that run after every other one, in this order (see the module doc).
LAST = ("test_zz_sandbox_heals.py", "test_zz_destroy.py")


def cgkit(*args: str) -> int:
    """Run the cgkit CLI in-process; return its exit status."""
    return main(list(args))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put LAST's modules at the end of the run, in LAST's order (the others keep theirs)."""
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LAST.index(name) + 1 if name in LAST else 0
    items.sort(key=rank)  # stable: file order within each rank


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch project root; CGKIT_PROJECT_DIR points at it for the session."""
    missing = [status.name for status in toolchain.doctor() if not status.ok]
    assert not missing, f"toolchain incomplete ({', '.join(missing)}): run tools/setup"
    assert sandbox.status(ROOT).running, "the sandbox cluster is not running: run `cgkit sandbox up`"
    root = copy_project(ROOT, tmp_path_factory.mktemp("project"))
    old = {k: os.environ.get(k) for k in ("CGKIT_PROJECT_DIR", "CGKIT_SANDBOX_DIR")}
    os.environ["CGKIT_PROJECT_DIR"] = str(root)
    os.environ["CGKIT_SANDBOX_DIR"] = str(sandbox.paths(ROOT).root)
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def deployed(project: Path, api: client.ApiClient) -> Iterator[Path]:
    """The platform and GM0344 deployed by `cgkit up` (asserted to succeed), kept up for the whole
    session; destroyed after.

    test_zz_destroy asserts the destroy; this teardown only makes sure nothing is left when a
    test before it failed.
    """
    present = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert CODE.lower() not in present, (f"namespace {CODE.lower()} already exists in the sandbox (another "
                                         "deployment?); destroy it or recreate the sandbox first")
    try:
        assert cgkit("up", "--env", ENV, "platform", "--yes") == 0
        assert cgkit("up", "--env", ENV, CODE, "--yes") == 0
        yield project
    finally:
        cgkit("destroy", "--env", ENV, CODE, "--allow-data-loss", CODE, "--yes")
        cgkit("destroy", "--env", ENV, "platform", "--yes")


@pytest.fixture(scope="session")
def api() -> client.ApiClient:
    """A Kubernetes API client for the sandbox, as cluster admin."""
    return kube_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path(ROOT)))
