"""Write a municipality's first config file from the CBS list.

``cgkit onboard GM0344 --env sandbox`` writes ``environments/sandbox/municipalities/gm0344.yaml``
holding the two required fields (code, domain) and the CBS name as a comment. The default domain is
``<slug of the CBS name>-<code-lowercase>.<env>.cgkit.test`` when the environment gives no better one,
so two municipalities called Bergen get different domains.

Files are written atomically: the text goes to a hidden temporary file beside the target, is checked
as a municipality file under its final name, and is then linked into place (``os.link``, which fails
when the name exists: a file another ``onboard`` wrote meanwhile is never overwritten) or, with
``--force``, renamed over the old one (``os.replace``; the caller is told what it held). Nothing is
written through a symbolic link or outside the project: the write is `cgkit.writer.write_text`, the
one path of every file cgkit writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cgkit.config.loader import load_environment, municipality_codes, municipality_file, read_municipality_file
from cgkit.config.model import DOMAIN_HINT, DOMAIN_PATTERN
from cgkit.config.yamlsource import read_text
from cgkit.errors import ConfigError, FileExistsCgkitError, InvalidArgumentError
from cgkit.gemeenten import Gemeente, all_gemeenten, in_province, lookup, slug
from cgkit.writer import WriteError, write_text

__all__ = ["OnboardTally", "WriteError", "default_domain", "onboard", "onboard_all", "render_file"]


def default_domain(gemeente: Gemeente, env: str) -> str:
    """Return the domain onboarding proposes: ``utrecht-gm0344.sandbox.cgkit.test`` for GM0344."""
    return f"{slug(gemeente.name)}-{gemeente.code.lower()}.{env}.cgkit.test"


def render_file(gemeente: Gemeente, domain: str) -> str:
    """Return the text of a minimal municipality file (YAML, with a schema modeline for editors)."""
    return (
        "# yaml-language-server: $schema=../../schema/municipality.schema.json\n"
        f"# {gemeente.name} ({gemeente.province}); fields: see environments/schema/municipality.schema.json\n"
        f"code: {gemeente.code}\n"
        f"domain: {domain}\n"
    )


def onboard(root: Path, env: str, code: str, domain: str | None = None, force: bool = False,
            notify: Callable[[str], object] | None = None) -> Path:
    """Write the municipality file for ``code`` in ``env`` and return its path.

    ``notify`` receives one line when ``force`` replaces an existing file, saying what it held.

    Raises:
        UnknownMunicipalityError: the code is not in the CBS list.
        ConfigError: the environment's own file is missing or invalid.
        FileExistsCgkitError: the file exists (or appeared while writing) and ``force`` is False.
        InvalidArgumentError: the domain is invalid or another municipality's.
        WriteError: the file cannot be written where it belongs.
    """
    gemeente = lookup(code)
    load_environment(root, env)
    path = municipality_file(root, env, gemeente.code)
    if os.path.lexists(path) and not force:
        raise FileExistsCgkitError(f"{_shown(root, path)} already exists", hint="edit it, or pass --force to overwrite it")
    domain = domain or default_domain(gemeente, env)
    _check_domain(root, env, gemeente.code, domain)
    _write(root, path, render_file(gemeente, domain), force, notify)
    return path


def _check_domain(root: Path, env: str, code: str, domain: str) -> None:
    """Refuse a domain that is not a valid DNS name or that another municipality of ``env`` uses.

    Raises:
        InvalidArgumentError: naming the problem and what would be valid.
    """
    if not re.fullmatch(DOMAIN_PATTERN, domain):
        raise InvalidArgumentError(f"--domain '{domain}' is not valid", hint=f"use {DOMAIN_HINT}")
    for other in municipality_codes(root, env):
        other_file = municipality_file(root, env, other)
        try:
            text = read_text(other_file, other_file.name, root) if other != code else ""
        except ConfigError:
            continue  # unreadable or a link out of the project: `cgkit validate` names it
        if re.search(rf"^domain:\s*{re.escape(domain)}\s*$", text, re.M):
            raise InvalidArgumentError(f"--domain '{domain}' is already the domain of {other_file.name}",
                                       hint="each municipality needs its own domain")


@dataclass
class OnboardTally:
    """What ``onboard_all`` did: the files it ``written`` and the ones it ``kept`` (already there)."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def onboard_all(root: Path, env: str, province: str | None = None) -> OnboardTally:
    """Write a municipality file, with the default domain, for every CBS municipality of ``env`` that
    has none (only those of ``province`` when given). Existing files are left untouched, so running it
    again writes nothing.

    Raises:
        UnknownMunicipalityError: ``province`` is not a province of the CBS list.
        ConfigError: the environment's own file is missing or invalid.
    """
    # "" is an unknown province (in_province says so), never "every province": --all writes 342 files
    gemeenten = in_province(province) if province is not None else list(all_gemeenten().values())
    load_environment(root, env)
    tally = OnboardTally()
    for gemeente in gemeenten:
        path = municipality_file(root, env, gemeente.code)
        try:
            if os.path.lexists(path):
                raise FileExistsCgkitError(str(path))
            _write(root, path, render_file(gemeente, default_domain(gemeente, env)), False)
            tally.written.append(path)
        except FileExistsCgkitError:  # there already, or written by another onboard meanwhile
            tally.kept.append(path)
    return tally


def _shown(root: Path, path: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


def _write(root: Path, path: Path, text: str, force: bool, notify: Callable[[str], object] | None = None) -> None:
    """Write ``text`` to ``path`` through `cgkit.writer.write_text`, after checking it as a municipality
    file under its final name; with ``force`` tell ``notify`` what the replaced file held.

    Raises:
        FileExistsCgkitError: ``path`` exists and ``force`` is False.
        ConfigError: ``text`` is not a valid municipality file (a bug in `render_file`).
        WriteError: ``path`` is a link or no file, its folder leads out of ``root``, or it cannot be written.
    """
    shown = _shown(root, path)
    old = _old_text(path) if force else None
    try:
        write_text(root, path, text, exclusive=not force,
                   check=lambda tmp: read_municipality_file(root, tmp, display=shown))
    except FileExistsCgkitError:
        raise FileExistsCgkitError(f"{shown} already exists (written while this onboard ran)",
                                   hint="edit it, or pass --force to overwrite it") from None
    if old is not None and notify:
        notify(f"replaced {shown}, which held: " + "; ".join(
            line.strip() for line in old.splitlines() if line.strip() and not line.startswith("#"))[:300])


def _old_text(path: Path) -> str | None:
    """What ``path`` holds now (None when it does not exist; its kind when it is no readable file)."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        return f"(a {'symbolic link' if path.is_symlink() else 'non-regular file'}, now replaced by a file)"
    try:
        with path.open("rb") as handle:
            return handle.read(2000).decode("utf-8", errors="replace")
    except OSError as err:
        return f"(unreadable: {err.strerror})"
