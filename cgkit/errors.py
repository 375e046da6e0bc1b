"""The errors cgkit reports to its users, and how they render.

Every error has a stable kebab-case ``reference`` (as pip's diagnostic errors do), a one-line
message and an optional hint. Config problems carry the file, the line (where known) and the field
path, so a user can go straight to the fault. Every rendering shows a URL only redacted
(`cgkit.urls.redact_text`: no user information, no value of a parameter the engine does not read),
whatever a value, a library or the engine put in the message. This module imports nothing else from
cgkit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cgkit.urls import redact_text


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one config file.

    Attributes:
        file: the file the problem is in (as given to the loader, usually repo-relative).
        line: 1-based line number, or None when the problem has no single place (a missing key
            is reported at its parent mapping's line).
        field: dotted path of the field (``apps.openzaak.replicas``); "" for the whole file.
        message: what is wrong and what would be valid, as a sentence.
    """

    file: Path | str
    line: int | None
    field: str
    message: str

    def render(self) -> str:
        """Return ``file:line: field: message`` (``file: message`` when line/field are unknown)."""
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        message = shown(" ".join(self.message.split()))  # one line, whatever a value or a library put in it
        return f"{where}: {printable(self.field)}: {message}" if self.field else f"{where}: {message}"


def printable(text: str) -> str:
    """Return ``text`` with every character that is not printable (line breaks, NEL, control and
    format characters) written as its Python escape (``\\n``, ``\\x85``), so text taken from an input
    file always stays on one line and shows what is there."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def shown(text: str) -> str:
    """``text`` as cgkit prints a message: `printable`, and every URL in it redacted (module doc)."""
    return redact_text(printable(text))


class CgkitError(Exception):
    """Base of every error cgkit expects and reports without a traceback.

    Attributes:
        reference: stable kebab-case id of the error kind (for docs and tests).
        hint: one sentence on what to do next, or None.
    """

    reference = "cgkit-error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def render(self) -> str:
        """Return the message, then the hint on its own line when there is one."""
        text = f"error: {shown(str(self))}"
        return f"{text}\nhint: {shown(self.hint)}" if self.hint else text


@dataclass
class ConfigError(CgkitError):
    """One or more config files are invalid; nothing was deployed.

    Attributes:
        issues: every problem found, in file order.
    """

    issues: list[ConfigIssue] = field(default_factory=list)
    reference = "invalid-config"

    def __post_init__(self) -> None:
        CgkitError.__init__(self, f"{len(self.issues)} problem(s) in config files")

    def render(self) -> str:
        """Return one line per issue, as ``cgkit validate`` prints them."""
        return "\n".join(issue.render() for issue in self.issues)


class UnknownMunicipalityError(CgkitError):
    """A CBS code that is not in the CBS list of municipalities."""

    reference = "unknown-municipality"


class FileExistsCgkitError(CgkitError):
    """A file cgkit would write already exists and --force was not given."""

    reference = "file-exists"


class InvalidArgumentError(CgkitError):
    """A command-line argument is not valid (the message says what would be)."""

    reference = "invalid-argument"


class EngineError(CgkitError):
    """The Pulumi engine reported a failed operation."""

    reference = "engine-failed"


class StackLockedError(EngineError):
    """Another update holds the stack's lock (Pulumi's ConcurrentUpdateError); nothing was changed."""

    reference = "stack-locked"


class EngineInterruptedError(EngineError):
    """The engine process ended by a signal (Ctrl-C before it could cancel gracefully)."""

    reference = "engine-interrupted"


class PolicyViolationError(EngineError):
    """The policy pack found a mandatory violation; the engine refused the preview or update."""

    reference = "policy-violation"


class DataAtRiskError(EngineError):
    """An operation would delete or replace a resource that holds records (protected in the stack's
    state); nothing was changed. Proceed on purpose, after a backup, with ``--allow-data-loss CODE``."""

    reference = "data-at-risk"


class ToolchainError(CgkitError):
    """A tool of the offline toolchain is missing or has the wrong version."""

    reference = "toolchain"
