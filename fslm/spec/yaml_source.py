"""Parse YAML (safe tags only) into plain data plus the file line of every key, for error messages."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fslm.spec.problems import Problem

KeyPath = tuple[str | int, ...]

_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_CONTROL_NAMES = {0x00: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0xFFFE: "a noncharacter", 0xFFFF: "a noncharacter"}
_MOST_CONTROL_PROBLEMS = 10

MAX_FILE_BYTES = 4 * 2**20  # a 5,000-stage pipeline is about 300 kB
MAX_DEPTH = 64  # levels of nested mappings and lists
MAX_ALIAS_NODES = 10_000  # values that aliases (`*name`) may repeat, in all

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class Location:
    file: Path
    line: int  # 1-based line of the key (or of the list item)
    value_line: int  # 1-based line where the value's text starts (a `|` block starts on the next line)


@dataclass
class ParsedYaml:
    file: Path
    data: Any = None
    locations: dict[KeyPath, Location] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        return self.locations[path].line if path in self.locations else None


def read_yaml_file(file: Path, what: str) -> tuple[bytes, ParsedYaml]:
    """The bytes of `file` and its parsed YAML; a file that cannot be read, or is not UTF-8 text, is a problem
    of the result (as are syntax errors), never an exception."""
    parsed = ParsedYaml(file)
    try:
        raw = _read_regular_file(file, what)
    except OSError as error:
        parsed.problems.append(Problem(file, None, _unreadable(what, error)))
        return b"", parsed
    except ValueError as error:
        parsed.problems.append(Problem(file, None, str(error)))
        return b"", parsed
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text: byte 0x{raw[error.start]:02x} cannot be decoded; save the {what} as UTF-8"
        parsed.problems.append(Problem(file, line, message))
        return raw, parsed
    return raw, parse_yaml(file, text)


def _read_regular_file(file: Path, what: str) -> bytes:
    """The bytes of `file`; ValueError for a device, a pipe or the like (reading /dev/zero never ends) and for
    a file larger than MAX_FILE_BYTES."""
    # O_NONBLOCK: opening a named pipe would otherwise wait for a writer
    with os.fdopen(os.open(file, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        status = os.fstat(handle.fileno())
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(file))
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"this is not a regular file (a device or a pipe?); expected a {what}")
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(
            f"this {what} is larger than {MAX_FILE_BYTES // 2**20} MiB; such files are far smaller"
        )
    return raw


def _unreadable(what: str, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return f"{what} not found"
    if isinstance(error, IsADirectoryError):
        return f"this is a directory; expected a {what}"
    return f"cannot read this {what}: {error.strerror or error}"


def parse_yaml(file: Path, text: str) -> ParsedYaml:
    """Parse `text` (the contents of `file`); syntax errors, duplicate keys, control characters, and nesting
    or alias expansion past the bounds become problems, not exceptions."""
    parsed = ParsedYaml(file)
    parsed.problems += _control_characters(file, text)
    if parsed.problems:
        return parsed
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            parsed.data = _Builder(loader, parsed).build(root, (), root.start_mark.line + 1)
    except _Refused as refused:
        parsed.data = None
        parsed.problems.append(Problem(file, refused.line, refused.message))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        what = "; ".join(part for part in (error.context, error.problem) if part)
        parsed.problems.append(Problem(file, line, f"YAML syntax error: {what}"))
    except yaml.YAMLError as error:
        parsed.problems.append(Problem(file, None, f"YAML error: {error}"))
    finally:
        loader.dispose()
    return parsed


def _control_characters(file: Path, text: str) -> list[Problem]:
    """A problem for each line (the first ten) holding a character YAML does not allow (NUL, ESC, DEL…)."""
    problems: list[Problem] = []
    line, counted_to = 1, 0
    match = _NON_PRINTABLE.search(text)
    while match is not None and len(problems) < _MOST_CONTROL_PROBLEMS:
        line += text.count("\n", counted_to, match.start())
        counted_to = match.start()
        character = ord(match.group())
        message = (
            f"U+{character:04X} ({_CONTROL_NAMES.get(character, 'a control character')}) "
            "is not allowed in YAML"
        )
        if character < 0x100:
            message += f'; inside a double-quoted string, write it as the escape "\\x{character:02x}"'
        problems.append(Problem(file, line, message))
        next_line = text.find("\n", match.start())
        match = None if next_line < 0 else _NON_PRINTABLE.search(text, next_line)
    return problems


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_DEPTH before its recursive composer gets there."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, parsed: ParsedYaml) -> None:
        self.loader = loader
        self.parsed = parsed
        self.built: set[int] = set()  # ids of the nodes built so far: meeting one again means an alias
        self.inside_alias = 0
        self.alias_nodes = 0  # nodes built again because an alias repeats them
        self.alias_line = 1

    def build(self, node: Node, path: KeyPath, line: int) -> Any:
        repeated = id(node) in self.built
        self.built.add(id(node))
        if repeated and not self.inside_alias:
            self.alias_line = line  # where the outermost alias being expanded is used
        if len(path) > MAX_DEPTH:
            raise _Refused(self.alias_line, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        if repeated or self.inside_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Refused(
                    self.alias_line,
                    f"aliases here expand to more than {MAX_ALIAS_NODES:,} values; write the values out",
                )
        self.inside_alias += repeated
        try:
            return self._build(node, path, line)
        finally:
            self.inside_alias -= repeated

    def _build(self, node: Node, path: KeyPath, line: int) -> Any:
        value_line = node.start_mark.line + 1
        if isinstance(node, ScalarNode) and node.style in ("|", ">"):
            value_line += 1
        self.parsed.locations[path] = Location(self.parsed.file, line, value_line)
        if isinstance(node, MappingNode):
            return self._mapping(node, path) if self._plain_tag(node, _MAP_TAG) else None
        if isinstance(node, SequenceNode):
            if not self._plain_tag(node, _SEQ_TAG):
                return None
            return [
                self.build(item, (*path, index), item.start_mark.line + 1)
                for index, item in enumerate(node.value)
            ]
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as error:
            self._problem(node, f"cannot read this value: {error.problem}")
            return None

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                self._problem(
                    key_node, "only plain names can be keys here (no lists, mappings or '<<' merges)"
                )
                continue
            # the key's text as written: `on:` or `1:` stay names, not YAML 1.1 booleans or numbers
            key = key_node.value
            if key in first_line:
                self._problem(key_node, f"duplicate key {key!r} (first given on line {first_line[key]})")
                continue
            first_line[key] = line
            result[key] = self.build(value_node, (*path, key), line)
        return result

    def _plain_tag(self, node: Node, default_tag: str) -> bool:
        if node.tag != default_tag:
            self._problem(node, f"YAML tags such as {node.tag!r} are not supported")
            return False
        return True

    def _problem(self, node: Node, message: str) -> None:
        self.parsed.problems.append(Problem(self.parsed.file, node.start_mark.line + 1, message))
