"""Read one YAML config file strictly, keeping the line of every value.

PyYAML parses; this module only adds what a config file needs on top of it:

* the 1-based line of every mapping key and sequence item, keyed by field path, so later errors
  (schema or semantic) can cite ``file:line``;
* errors instead of surprises for YAML's traps: duplicate keys (PyYAML keeps the last silently),
  YAML 1.1 booleans written as words (``no``, ``on``, ``yes``, ``off``, ``y``, ``n``: the "Norway
  problem"), numbers with a leading zero (``0344`` is octal 228 in YAML 1.1), tabs, several
  documents, an empty file, a top level that is not a mapping.

A field path is a tuple of keys and list indexes: ``("apps", "openzaak", "replicas")``.

It is also the one input boundary of cgkit: every file cgkit reads (config files here, manifests,
waiver files and fleet reports through `read_text` and `check_bounds`) is read only when it is a
regular file inside the project (a symbolic link may not lead out of it), no larger than
`Limits.max_bytes`, nested no deeper than `Limits.max_depth`, and expanding through YAML aliases to
no more than `Limits.max_nodes` values ("billion laughs"). Breaking a bound is a `ConfigError`
naming the file (and line), never a hang, a memory blow-up or a traceback.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cgkit.errors import ConfigError, ConfigIssue

FieldPath = tuple[str | int, ...]



@dataclass(frozen=True)
class Limits:
    """Bounds on one input file.

    Attributes:
        max_bytes: the largest file read (larger ones are refused before parsing).
        max_depth: the deepest nesting of mappings and lists.
        max_nodes: the most values one YAML document may hold once every alias is expanded.
    """

    max_bytes: int = 1 << 20
    max_depth: int = 32
    max_nodes: int = 20_000


#: Config files: a municipality file is a few hundred bytes, an environment file a few kilobytes.
CONFIG_LIMITS = Limits()
#: Manifests (helm template output of a whole platform) and fleet reports of 342 stacks.
BULK_LIMITS = Limits(max_bytes=64 << 20, max_depth=64, max_nodes=1_000_000)

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
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                self.issue(key_node, path, f"a key is {kind} (YAML '? ' complex key); keys are plain field names")
                continue
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
        except yaml.constructor.ConstructorError as bad:  # an unknown tag such as !!python/object
            self.issue(node, path, f"'{node.value}' has a tag cgkit does not read ({bad.problem}); "
                                   f"remove the tag, or quote the value if you mean the text")
            return node.value
        except (ValueError, OverflowError) as bad:  # e.g. a date like 2027-02-30
            self.issue(node, path, f"'{node.value}' is not a valid {_kind(node.tag)} ({bad}); "
                                   f"quote it if you mean the text")
            return node.value


def _kind(tag: str) -> str:
    """Return a word for a YAML tag: ``tag:yaml.org,2002:timestamp`` -> ``date``."""
    name = tag.rsplit(":", 1)[-1]
    return {"timestamp": "date", "int": "number", "float": "number"}.get(name, name)


def read_yaml(file: Path, display: Path | None = None, root: Path | None = None,
              limits: Limits = CONFIG_LIMITS) -> YamlSource:
    """Read ``file`` as one YAML mapping, keeping lines.

    Args:
        file: the file to read (UTF-8).
        display: how to name the file in messages (default: ``file`` as given).
        root: the project root; a symbolic link that resolves outside it is refused (None: no check).
        limits: size, depth and alias-expansion bounds.

    Returns:
        The data and the line of every field.

    Raises:
        ConfigError: the file is missing, not a regular file, a link out of the project, too large,
            empty, not valid YAML (tabs included), nested too deep, expands too far through aliases,
            has several documents, is not a mapping at the top, or contains a trap listed in the
            module doc. All traps found are reported at once.
    """
    name = display or file
    text = read_text(file, name, root, limits)
    node = _compose(text, name, limits)
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise ConfigError([ConfigIssue(name, node.start_mark.line + 1, "", f"the file holds {kind}; "
                                       "it must be a mapping of fields (key: value)")])
    reader = _Reader(name)
    data = reader.mapping(node, ())
    if reader.issues:
        raise ConfigError(reader.issues)
    return YamlSource(name, data, reader.lines)


def read_text(file: Path, display: Path | str | None = None, root: Path | None = None,
              limits: Limits = CONFIG_LIMITS) -> str:
    """Return the UTF-8 text of ``file`` after checking what it is, without ever blocking on it.

    Args:
        file: the path to read.
        display: how to name the file in messages (default: ``file``).
        root: when given, the file (after following every symbolic link) must lie inside it.
        limits: ``max_bytes`` bounds the size.

    Raises:
        ConfigError: naming the file: it does not exist, leads out of ``root``, is not a regular file
            (a folder, FIFO, device or socket: opening one could block for ever), is larger than
            ``limits.max_bytes``, cannot be read, or is not UTF-8.
    """
    name = display or file

    def refuse(message: str) -> ConfigError:
        return ConfigError([ConfigIssue(name, None, "", message)])

    try:
        target = file.resolve()
        if root is not None and not target.is_relative_to(root.resolve()):
            raise refuse(f"is a symbolic link to {target}, outside the project {root.resolve()}; cgkit reads "
                         "only files inside the project: copy the file in instead of linking it")
        info = os.stat(file)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(f"is not a regular file (it is {_file_kind(info.st_mode)}); give a file")
        if info.st_size > limits.max_bytes:
            raise refuse(f"is {info.st_size} bytes; the most cgkit reads is {limits.max_bytes} bytes")
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped for a FIFO since the stat
                raise refuse("is not a regular file; give a file")
            raw = handle.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise refuse("no such file") from None
    except (OSError, RuntimeError) as err:  # RuntimeError: a symbolic link loop (Python 3.11 resolve)
        raise refuse(f"cannot read the file: {getattr(err, 'strerror', None) or err}") from None
    if len(raw) > limits.max_bytes:
        raise refuse(f"is larger than {limits.max_bytes} bytes, the most cgkit reads")
    return decode(raw, name)


def decode(raw: bytes, name: Path | str) -> str:
    """Return ``raw`` as UTF-8 text (a byte-order mark is dropped).

    Raises:
        ConfigError: the bytes are not UTF-8; the message gives the line and the offending byte.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(name, line, "", f"not UTF-8 text (byte 0x{raw[err.start]:02x}); "
                                       "save the file as UTF-8")]) from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((word for test, word in kinds if test(mode)), "not a file")


def check_bounds(text: str, name: Path | str, limits: Limits, loader: type = yaml.SafeLoader) -> None:
    """Walk the YAML events of ``text`` (PyYAML's parser, which keeps its own stack) and refuse a
    document nested deeper than ``limits.max_depth`` or holding more than ``limits.max_nodes`` values
    once its aliases are expanded, or an alias inside the node it names (a cycle). Call it before
    composing or loading: PyYAML's composer recurses per level and the values an alias shares are
    walked once per use by everything after it.

    Raises:
        ConfigError: a bound is broken (with the line), or the text is not valid YAML.
        yaml.YAMLError: never; parse errors become ConfigError.
    """
    def refuse(event: yaml.Event, message: str) -> ConfigError:
        return ConfigError([ConfigIssue(name, event.start_mark.line + 1, "", message)])

    depth, total = 0, 0
    sizes: dict[str, int] = {}
    open_anchors: list[tuple[str | None, int]] = []
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.DocumentStartEvent):
                sizes, total = {}, 0
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_anchors):
                    raise refuse(event, f"the alias *{event.anchor} is inside the node it names (a cycle); "
                                        "write the values out")
                total += sizes.get(event.anchor, 1)
            elif isinstance(event, yaml.ScalarEvent):
                total += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                depth, total = depth + 1, total + 1
                open_anchors.append((event.anchor, total))
                if depth > limits.max_depth:
                    raise refuse(event, f"nested deeper than {limits.max_depth} levels; flatten the structure")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                anchor, start = open_anchors.pop()
                if anchor:
                    sizes[anchor] = total - start + 1
            if total > limits.max_nodes:
                raise refuse(event, f"holds more than {limits.max_nodes} values once its aliases (*name) "
                                    "are expanded; write it out without nested aliases")
    except yaml.YAMLError as err:
        raise yaml_error(err, name, text) from None
    except ValueError as err:  # PyYAML's scanner: an escape such as \U00344004 beyond Unicode
        raise ConfigError([ConfigIssue(name, None, "", f"invalid YAML: {err}")]) from None


def yaml_error(err: yaml.YAMLError, name: Path | str, text: str = "") -> ConfigError:
    """Return a PyYAML error as a ConfigError naming the file and line (tabs get their own message)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line = mark.line + 1 if mark else None
    if isinstance(err, yaml.reader.ReaderError) and isinstance(err.position, int):  # a control character
        line = text[:err.position].count("\n") + 1 if text else None
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err).splitlines()[0]
    if "\t" in text and "cannot start any token" in problem:
        problem = "a tab character; YAML indents with spaces only"
    return ConfigError([ConfigIssue(name, line, "", f"invalid YAML: {problem}")])


def _compose(text: str, name: Path, limits: Limits = CONFIG_LIMITS) -> yaml.Node:
    """Return the single document's root node of ``text``; errors as ConfigError."""
    check_bounds(text, name, limits)
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise yaml_error(err, name, text) from None
    nodes = [node for node in nodes if node is not None]
    if not nodes:
        raise ConfigError([ConfigIssue(name, None, "", "the file is empty; it must hold at least "
                                       "the required fields")])
    if len(nodes) > 1:
        raise ConfigError([ConfigIssue(name, nodes[1].start_mark.line + 1, "",
                                       "the file holds several YAML documents (---); keep one")])
    return nodes[0]
