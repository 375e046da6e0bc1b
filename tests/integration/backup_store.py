"""The sandbox's object store as the backups' store, for the modules that back tenants up.

The store runs on the node's bridge, where the backup pods reach it; the environment file gets a
``backups:`` section pointing at it for as long as the context lasts, and is put back after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from cgkit import objectstore, sandbox
from cgkit.config.loader import environment_file
from cgkit.node_manifests import NODE_IP
from tests.integration.conftest import ENV

BUCKET = "cgkit-backups"


@contextmanager
def backups_to_the_sandbox_store(project: Path) -> Iterator[objectstore.ObjectStore]:
    """Start the store, point ``project``'s sandbox environment at it (bucket BUCKET, a daily
    schedule), yield the store; put the file back and stop the store after."""
    store = objectstore.ObjectStore(sandbox.paths().objectstore)
    store.up(objectstore.free_port(), also_on=(NODE_IP,))
    path = environment_file(project, ENV)
    original = path.read_text()
    try:
        environment = yaml.safe_load(original)
        environment["backups"] = {"endpoint": f"http://{NODE_IP}:{store.endpoint.rsplit(':', 1)[1]}",
                                  "bucket": BUCKET, "schedule": "0 3 * * *"}
        path.write_text(yaml.safe_dump(environment, sort_keys=False))
        yield store
    finally:
        path.write_text(original)
        store.down()
