"""A throwaway copy of the project, for integration tests and benchmarks.

The copy holds the program, the components, the policies and the config, and links the
checkout's ``.venv``; its ``.cgkit`` state (backend, passphrase, stack config) starts empty, so
whatever runs in it never touches the checkout's own stacks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: What the program needs at run time, relative to the project root.
COPIED = ("Pulumi.yaml", "pyproject.toml", "cgkit", "components", "stacks", "policies", "environments",
          "tools")  # tools/versions.toml: the pins name the sandbox images (cgkit.sandbox_images.key)


def copy_project(source: Path, target: Path) -> Path:
    """Copy the project at ``source`` into the folder ``target`` (made when missing; empty); return it.

    Raises:
        FileNotFoundError: ``source`` has no ``.venv`` (run tools/setup first).
    """
    if not (source / ".venv").is_dir():
        raise FileNotFoundError(f"{source / '.venv'} is missing; run tools/setup first")
    target.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif item.exists():
            shutil.copy(item, target / name)
    (target / ".venv").symlink_to(source / ".venv")
    return target
