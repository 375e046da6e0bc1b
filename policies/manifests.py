"""Read Kubernetes manifests from files and directories (multi-document YAML, JSON, ``kind: List``).

Every file goes through cgkit's input boundary (`cgkit.config.yamlsource`): regular files only (a
FIFO could block for ever; use ``-`` for a pipe), bounded size, nesting and alias expansion, and
inside a directory no symbolic link that leads out of it. What comes out is JSON-shaped, as the API
server would see it after ``kubectl apply``: keys are text, dates and binary values are text. Lists
(``kind: List``, ``PodList``, ...) are unpacked to any depth. An object whose fields do not have the
Kubernetes API's types (`policies.shape`) is refused with the field named, never judged half-way.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from cgkit.config.yamlsource import BULK_LIMITS, Limits, check_bounds, decode, read_text
from cgkit.errors import ConfigError, printable
from policies import shape

SUFFIXES = (".yaml", ".yml", ".json")
#: The path that means standard input (``helm template ... | cgkit policy check -``).
STDIN = Path("-")
#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else the pure one.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Problems listed per file before the rest are summarised.
MOST_PROBLEMS = 20


class ManifestError(Exception):
    """A file could not be read as Kubernetes manifests; the message names the file (and line)."""


@dataclass(frozen=True)
class Document:
    """One manifest and the file it came from."""

    obj: dict[str, Any]
    source: str


def files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (recursively, ``*.yaml``/``*.yml``/``*.json`` in any case, sorted, without
    following links to folders); files and ``-`` (standard input) pass as given.

    Raises ManifestError for a path that does not exist, and for a symbolic link inside a directory
    that leads out of it.
    """
    out: list[Path] = []
    for path in paths:
        if path == STDIN:
            out.append(path)
        elif path.is_dir():
            out += _walk_dir(path)
        elif os.path.lexists(path):
            out.append(path)  # a file, or something read_text refuses with its reason
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return out


def _walk_dir(top: Path) -> list[Path]:
    found = []
    base = top.resolve()
    for folder, dirs, names in os.walk(top, onerror=_raise_walk_error):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.suffix.lower() not in SUFFIXES:
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                raise ManifestError(f"{path}: is a symbolic link to {path.resolve()}, outside {top}; "
                                    "give that file itself, or copy it in")
            found.append(path)
    return found


def _raise_walk_error(err: OSError) -> None:
    raise ManifestError(f"{err.filename}: cannot list the folder: {err.strerror}")


def read(path: Path, limits: Limits = BULK_LIMITS) -> list[Document]:
    """The manifests in one file; empty documents are skipped and Lists are unpacked to any depth.

    Raises ManifestError naming the file (and line or document) when the file cannot be read or
    breaks a bound, is not valid YAML, holds a document that is not a Kubernetes object (a mapping
    with a text ``kind``), or an object whose fields do not match the API types.
    """
    name = "<stdin>" if path == STDIN else str(path)
    try:
        if path == STDIN:
            raw = sys.stdin.buffer.read(limits.max_bytes + 1)
            if len(raw) > limits.max_bytes:
                raise ManifestError(f"{name}: more than {limits.max_bytes} bytes, the most cgkit reads")
            text = decode(raw, name)
        else:
            text = read_text(path, name, None, limits)
        check_bounds(text, name, limits, SAFE_LOADER)
    except ConfigError as err:
        raise ManifestError(err.render()) from None
    try:
        docs = list(yaml.load_all(text, Loader=SAFE_LOADER))
    except yaml.YAMLError as e:
        raise ManifestError(yaml_error(name, e)) from None
    except (ValueError, TypeError, OverflowError) as e:  # a date such as 2026-13-45, a 5000-digit number
        raise ManifestError(f"{name}: a value cannot be read: {e}; quote it if it is text") from None
    out: list[Document] = []
    problems: list[str] = []
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        for where, obj in _objects(json_shaped(doc), f"document {i}", problems):
            found = shape.problems(obj) or shape.identity(obj)
            problems += [f"{where} ({_label(obj)}): {field}: {message}" for field, message in found]
            if not found:
                out.append(Document(obj, name))
    if problems:
        more = f"\n{name}: ... and {len(problems) - MOST_PROBLEMS} more" if len(problems) > MOST_PROBLEMS else ""
        raise ManifestError("\n".join(printable(f"{name}: {p}") for p in problems[:MOST_PROBLEMS]) + more)
    return out


def yaml_error(name: str, err: yaml.YAMLError) -> str:
    """One line for a YAML error: ``file:line:column: invalid YAML: problem`` (PyYAML's own text spans
    several lines and names ``<unicode string>``)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
    said = [getattr(err, "context", None), getattr(err, "problem", None)]
    problem = ", ".join(s for s in said if s) or str(err)  # "expected a single document ..., but found another"
    return f"{name}{where}: invalid YAML: {problem}"


def _objects(doc: Any, where: str, problems: list[str]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Yield ``(where, object)`` for a document: the object itself, or every item of a List, to any depth
    (the depth is bounded by the reader). Problems are appended as text."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str) or not doc["kind"]:
        problems.append(f"{where} is not a Kubernetes object (a mapping with a text kind)")
        return
    if not (doc["kind"] == "List" or doc["kind"].endswith("List") and "items" in doc):
        yield where, doc  # a custom kind named *List without items is an object (AllowList, say)
        return
    items = doc.get("items")  # a List without items is empty
    if items is None:
        return
    if not isinstance(items, list):
        problems.append(f"{where}: items: expected a list of objects, got {shape.describe(items)}")
        return
    for j, item in enumerate(items):
        yield from _objects(item, f"{where} items[{j}]", problems)


def _label(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{obj.get('kind')}/{meta.get('name', '?')}"


def json_shaped(value: Any) -> Any:
    """Return ``value`` as the JSON the API server would receive from ``kubectl apply``: mapping keys
    as text (``80`` -> ``"80"``, ``true`` -> ``"true"``, null -> ``"null"``), dates as ISO text, binary
    as base64 text, a ``!!set`` as a mapping to nulls; lists and mappings copied, other scalars kept."""
    if isinstance(value, dict):
        return {_key(k): json_shaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_shaped(v) for v in value]
    if isinstance(value, (set, frozenset)):  # !!set: a mapping whose values are null
        return {_key(k): None for k in value}
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(json_shaped(key))


def load(paths: Iterable[Path]) -> list[Document]:
    """All manifests under ``paths`` in file order; see `files` and `read` for errors."""
    return [doc for path in files(paths) for doc in read(path)]
