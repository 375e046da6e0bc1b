"""Where the project is: the folder with Pulumi.yaml and environments/, and its local state dir."""

from __future__ import annotations

import os
from pathlib import Path

from cgkit.errors import CgkitError


class ProjectNotFoundError(CgkitError):
    """cgkit was run outside a cgkit checkout and CGKIT_PROJECT_DIR is not set."""

    reference = "project-not-found"


def find_root(start: Path | None = None) -> Path:
    """Return the project root: ``$CGKIT_PROJECT_DIR``, else the nearest folder upward from ``start``
    (default: the working directory) that holds both Pulumi.yaml and environments/.

    Raises:
        ProjectNotFoundError: no such folder.
    """
    if os.environ.get("CGKIT_PROJECT_DIR"):
        return Path(os.environ["CGKIT_PROJECT_DIR"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "environments").is_dir():
            return folder
    raise ProjectNotFoundError(
        f"no cgkit project (Pulumi.yaml and environments/) at or above {here}",
        hint="run cgkit inside the cgkit checkout, or set CGKIT_PROJECT_DIR",
    )


def state_dir(root: Path) -> Path:
    """Return the project's local state folder (``<root>/.cgkit``, git-ignored), created mode 0700."""
    path = root / ".cgkit"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path
