"""Read one YAML config file strictly, keeping the line of every value.

PyYAML parses; this module only adds what a config file needs on top of it:

* the 1-based line of every mapping key and sequence item, keyed by field path, so later errors
  (schema or semantic) can cite ``file:line``;
* errors instead of surprises for YAML's traps: duplicate keys (PyYAML keeps the last silently),
  YAML 1.1 booleans written as words (``no``, ``on``, ``yes``, ``off``, ``y``, ``n``: the "Norway
  problem"), numbers with a leading zero (``0344`` is octal 228 in YAML 1.1), tabs, several
  documents, an empty file, a top level that is not a mapping.

A field path is a tuple of keys and list indexes: ``("apps", "openzaak", "replicas")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cgkit.errors import ConfigError, ConfigIssue

FieldPath = tuple[str | int, ...]

_BOOL_WORDS = re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")
_LEADING_ZERO_NUMBER = re.compile(r"^[-+]?0[0-9_]+$")


@dataclass
class YamlSource:
    """A parsed config file: its data and the line of each field.

    Attributes:
        file: the path as given (used in messages).
        data: the top-level mapping, plain Python values (str, int, float, bool, date, list, dict).
        lines: field path -> 1-based line of the key (mappings) or item (sequences).
    """

    file: Path
    data: dict[str, Any]
    lines: dict[FieldPath, int] = field(default_factory=dict)

    def line_of(self, path: FieldPath) -> int | None:
        """Return the line of ``path``, or of its nearest ancestor that has one (None at top level)."""
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return None


def dotted(path: FieldPath) -> str:
    """Return a field path as text: ``("apps", "openzaak", "replicas")`` -> ``apps.openzaak.replicas``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Reader:
    """Walks a composed YAML node tree into Python values, recording lines and traps."""

    def __init__(self, file: Path):
        self.file = file
        self.lines: dict[FieldPath, int] = {}
        self.issues: list[ConfigIssue] = []
        self._constructor = yaml.SafeLoader("")

    def issue(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, node.start_mark.line + 1, dotted(path), message))

    def value(self, node: yaml.Node, path: FieldPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return self.sequence(node, path)
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, path)
            key = key if isinstance(key, str) else str(key)
            if key in result:
                first = self.lines[(*path, key)]
                self.issue(key_node, (*path, key), f"duplicate key (first given on line {first}); keep one")
                continue
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, (*path, key))
        return result

    def sequence(self, node: yaml.SequenceNode, path: FieldPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = item.start_mark.line + 1
            items.append(self.value(item, (*path, index)))
        return items

    def scalar(self, node: yaml.ScalarNode, path: FieldPath) -> Any:
        plain = node.style is None
        if plain and _BOOL_WORDS.match(node.value):
            self.issue(
                node, path,
                f"'{node.value}' is ambiguous (YAML 1.1 reads it as a boolean); "
                f"write true or false, or quote it ('{node.value}') if you mean the text",
            )
            return node.value
        if plain and _LEADING_ZERO_NUMBER.match(node.value):
            fix = ("write the CBS code as GM and four digits, e.g. GM" + node.value.zfill(4)[-4:]
                   if path == ("code",) else f"quote it ('{node.value}') or write it without the zero")
            self.issue(node, path, f"'{node.value}' has a leading zero and YAML reads it as a number "
                                   f"(octal in YAML 1.1); {fix}")
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except (ValueError, yaml.constructor.ConstructorError) as bad:  # e.g. a date like 2027-02-30
            self.issue(node, path, f"'{node.value}' is not a valid {_kind(node.tag)} ({bad}); "
                                   f"quote it if you mean the text")
            return node.value


def _kind(tag: str) -> str:
    """Return a word for a YAML tag: ``tag:yaml.org,2002:timestamp`` -> ``date``."""
    name = tag.rsplit(":", 1)[-1]
    return {"timestamp": "date", "int": "number", "float": "number"}.get(name, name)


def read_yaml(file: Path, display: Path | None = None) -> YamlSource:
    """Read ``file`` as one YAML mapping, keeping lines.

    Args:
        file: the file to read (UTF-8).
        display: how to name the file in messages (default: ``file`` as given).

    Returns:
        The data and the line of every field.

    Raises:
        ConfigError: the file is missing, empty, not valid YAML (tabs included), has several
            documents, is not a mapping at the top, or contains a trap listed in the module doc.
            All traps found are reported at once.
    """
    name = display or file
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([ConfigIssue(name, None, "", f"cannot read the file: {err}")]) from err
    node = _compose(text, name)
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise ConfigError([ConfigIssue(name, node.start_mark.line + 1, "", f"the file holds {kind}; "
                                       "it must be a mapping of fields (key: value)")])
    reader = _Reader(name)
    data = reader.mapping(node, ())
    if reader.issues:
        raise ConfigError(reader.issues)
    return YamlSource(name, data, reader.lines)


def _compose(text: str, name: Path) -> yaml.Node:
    """Return the single document's root node of ``text``; errors as ConfigError."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        problem = err.problem or "not valid YAML"
        if "\t" in text and "cannot start any token" in problem:
            problem = "a tab character; YAML indents with spaces only"
        raise ConfigError([ConfigIssue(name, line, "", f"invalid YAML: {problem}")]) from err
    nodes = [node for node in nodes if node is not None]
    if not nodes:
        raise ConfigError([ConfigIssue(name, None, "", "the file is empty; it must hold at least "
                                       "the required fields")])
    if len(nodes) > 1:
        raise ConfigError([ConfigIssue(name, nodes[1].start_mark.line + 1, "",
                                       "the file holds several YAML documents (---); keep one")])
    return nodes[0]
