"""Write a municipality's first config file from the CBS list.

``cgkit onboard GM0344 --env sandbox`` writes ``environments/sandbox/municipalities/gm0344.yaml``
holding the two required fields (code, domain) and the CBS name as a comment. The default domain is
``<slug of the CBS name>-<code-lowercase>.<env>.cgkit.test`` when the environment gives no better one,
so two municipalities called Bergen get different domains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cgkit.config.loader import load_environment, municipality_codes, municipality_file
from cgkit.config.model import DOMAIN_HINT, DOMAIN_PATTERN
from cgkit.errors import FileExistsCgkitError, InvalidArgumentError
from cgkit.gemeenten import Gemeente, all_gemeenten, in_province, lookup, slug


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


def onboard(root: Path, env: str, code: str, domain: str | None = None, force: bool = False) -> Path:
    """Write the municipality file for ``code`` in ``env`` and return its path.

    Raises:
        UnknownMunicipalityError: the code is not in the CBS list.
        ConfigError: the environment's own file is missing or invalid.
        FileExistsCgkitError: the file exists and ``force`` is False.
    """
    gemeente = lookup(code)
    load_environment(root, env)
    path = municipality_file(root, env, gemeente.code)
    if path.exists() and not force:
        raise FileExistsCgkitError(f"{path} already exists", hint="edit it, or pass --force to overwrite it")
    domain = domain or default_domain(gemeente, env)
    _check_domain(root, env, gemeente.code, domain)
    _write(path, gemeente, domain)
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
        if other != code and re.search(rf"^domain:\s*{re.escape(domain)}\s*$", other_file.read_text(), re.M):
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
    gemeenten = in_province(province) if province else list(all_gemeenten().values())
    load_environment(root, env)
    tally = OnboardTally()
    for gemeente in gemeenten:
        path = municipality_file(root, env, gemeente.code)
        if path.exists():
            tally.kept.append(path)
        else:
            _write(path, gemeente, default_domain(gemeente, env))
            tally.written.append(path)
    return tally


def _write(path: Path, gemeente: Gemeente, domain: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_file(gemeente, domain), encoding="utf-8")
