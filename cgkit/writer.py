"""Every file cgkit writes, through one path: a regular file, no link followed, replaced atomically.

The reading side has one boundary (`cgkit.config.yamlsource.read_text`); this is the writing side.
A planted symbolic link (``environments/schema/environment.schema.json -> ~/.bashrc``, a linked
``--out`` folder, a linked ``Pulumi.<stack>.yaml``) must never make cgkit write where it leads. So
`write_text`:

* refuses a target that is a symbolic link or not a regular file (a folder, a FIFO, a device);
* refuses a folder that leads out of the project through a link; a folder the user named outside
  the project (``--out /tmp/report``) is written only when no link is followed on the way to it;
* writes a hidden temporary file beside the target, flushes it to disk, optionally checks it
  (``check``), and then links it into place (``exclusive``: ``os.link`` fails when the name appeared
  meanwhile) or renames it over the old file (``os.replace``, which replaces a name and never
  writes through one). A reader sees the old file or the new one, never half of one.

Errors are `WriteError` naming the file (relative to the project where it lies in it) and what is
wrong; never an OSError traceback.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from cgkit.errors import CgkitError, FileExistsCgkitError


class WriteError(CgkitError):
    """A file could not be written (read-only checkout, no space, a link, a folder that leads out of the project)."""

    reference = "cannot-write"


def shown(root: Path, path: Path) -> Path:
    """``path`` relative to ``root`` when it lies in it (for messages), else as given."""
    absolute = Path(os.path.abspath(path))
    return absolute.relative_to(root.absolute()) if absolute.is_relative_to(root.absolute()) else path


def check_target(root: Path, path: Path, outside_ok: bool = False) -> None:
    """Refuse ``path`` as a place to write (module doc) before anything is written there.

    Raises:
        WriteError: it is a symbolic link or not a regular file, or its folder leads out of the project
            through a link (or lies outside it when not ``outside_ok``, or is reached through a link).
    """
    name = shown(root, path)
    if os.path.islink(path):
        raise WriteError(f"{name} is a symbolic link (to {os.readlink(path)}); cgkit does not write through links",
                         hint="remove the link; cgkit then writes a plain file there")
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise WriteError(f"{name} is not a regular file; cgkit writes only plain files",
                         hint="remove it, or name another file")
    _check_folder(root, Path(os.path.abspath(path.parent)), outside_ok)


def _check_folder(root: Path, folder: Path, outside_ok: bool) -> None:
    """The folder (absolute, not yet resolved) must lie in the project, or anywhere when ``outside_ok``,
    and its nearest existing part must resolve to itself: no symbolic link followed on the way (what
    does not exist yet, mkdir makes, without links)."""
    lexical = Path(os.path.normpath(folder))
    inside = lexical.is_relative_to(root.absolute())
    if not inside and not outside_ok:
        raise WriteError(f"{folder} is outside the project {root}", hint="write inside the project")
    existing = lexical
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_relative_to(root.absolute()):
        expected = root.resolve() / existing.relative_to(root.absolute())
    elif inside:
        return  # the project's own folder is not made yet: everything below what exists, mkdir makes
    else:
        expected = existing
    real = existing.resolve()
    if real != expected:
        out = "" if real.is_relative_to(root.resolve()) else f", outside the project {root},"
        raise WriteError(f"{shown(root, existing)} leads to {real}{out} through a symbolic link; cgkit does not "
                         "write through links", hint="make it a plain folder inside the project")


def write_text(root: Path, path: Path, text: str, *, outside_ok: bool = False, exclusive: bool = False,
               check: Callable[[Path], object] | None = None, mode: int = 0o644) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through the one path (module doc); return ``path``.

    Args:
        root: the project root.
        path: the file to write.
        outside_ok: the user named a place outside the project (``--out``): allowed, without links.
        exclusive: never replace: fail when ``path`` exists (or appears while writing).
        check: called with the temporary file before it takes the name; what it raises propagates
            and nothing is written.
        mode: the new file's permissions.

    Raises:
        WriteError: see `check_target`; or the folder or file cannot be written (the system's reason).
        FileExistsCgkitError: ``exclusive`` and the name exists.
    """
    name = shown(root, path)
    check_target(root, path, outside_ok)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_folder(root, Path(os.path.abspath(path.parent)), outside_ok)  # nothing swapped in meanwhile
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise WriteError(f"{name}: cannot write: {err.strerror or err}") from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        if exclusive:
            os.link(tmp, path)  # fails if the name exists: never overwrite a file that appeared meanwhile
        else:
            os.replace(tmp, path)  # replaces the name; a link swapped in meanwhile is replaced, not followed
    except FileExistsError:
        raise FileExistsCgkitError(f"{name} already exists") from None
    except OSError as err:
        raise WriteError(f"{name}: cannot write: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
