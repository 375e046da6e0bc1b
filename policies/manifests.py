"""Read Kubernetes manifests from files and directories (multi-document YAML, JSON, ``kind: List``)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

SUFFIXES = (".yaml", ".yml", ".json")
#: The path that means standard input (``helm template ... | cgkit policy check -``).
STDIN = Path("-")
#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else the pure one.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(Exception):
    """A file could not be read as Kubernetes manifests; the message names the file (and line)."""


@dataclass(frozen=True)
class Document:
    """One manifest and the file it came from."""

    obj: dict[str, Any]
    source: str


def files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (recursively, ``*.yaml``/``*.yml``/``*.json``, sorted); files and ``-``
    (standard input) pass as given.

    Raises ManifestError for a path that does not exist.
    """
    out: list[Path] = []
    for path in paths:
        if path == STDIN:
            out.append(path)
        elif path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        elif path.is_file():
            out.append(path)
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return out


def read(path: Path) -> list[Document]:
    """The manifests in one file; empty documents are skipped and ``kind: List`` is unpacked.

    Raises ManifestError naming the file and line for unparsable YAML, and for documents that are not
    Kubernetes objects (not a mapping, or without ``kind``).
    """
    if path == STDIN:
        path = Path("<stdin>")
    try:
        text = sys.stdin.read() if path == Path("<stdin>") else path.read_text(encoding="utf-8")
        docs = list(yaml.load_all(text, Loader=SAFE_LOADER))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ManifestError(f"{path}{where}: invalid YAML: {e.problem or e.context}") from e
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise ManifestError(f"{path}: cannot read: {e}") from e
    out = []
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not doc.get("kind"):
            raise ManifestError(f"{path}: document {i} is not a Kubernetes object (a mapping with kind)")
        items = doc.get("items") or [] if doc["kind"].endswith("List") and "items" in doc else [doc]
        out += [Document(item, str(path)) for item in items if isinstance(item, dict)]
    return out


def load(paths: Iterable[Path]) -> list[Document]:
    """All manifests under ``paths`` in file order; see `files` and `read` for errors."""
    return [doc for path in files(paths) for doc in read(path)]
