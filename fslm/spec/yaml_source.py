"""Parse YAML (safe tags only) into plain data plus the file line of every key, for error messages.

libyaml's C parser reads the text (PyYAML's pure-Python scanner took 12.7 s on a 3 MB file); the data is
built straight from its events.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from fslm.spec.problems import Problem

KeyPath = tuple[str | int, ...]

_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_CONTROL_NAMES = {0x00: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0xFFFE: "a noncharacter", 0xFFFF: "a noncharacter"}
_MOST_CONTROL_PROBLEMS = 10

MAX_FILE_BYTES = 4 * 2**20  # a 2,000-stage pipeline is about 120 kB
MAX_DEPTH = 64  # levels of nested mappings and lists
MAX_ALIAS_NODES = 10_000  # values that aliases (`*name`) may repeat, in all
MAX_VALUES = 250_000  # scalars, lists and mappings in one file: a 2,000-stage pipeline has about 24,000

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# the first characters of plain scalars that may resolve to a type other than text ('' is the empty scalar)
_IMPLICIT_FIRST_CHARACTERS = frozenset(yaml.CSafeLoader.yaml_implicit_resolvers)

_Event = Any  # an event of yaml.events (the stubs make every event's marks optional)


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
    parser = yaml.CSafeLoader(text)
    builder = _Builder(parser, parsed)
    try:
        parsed.data = builder.document()
        parsed.locations = builder.all_locations
    except _Refused as refused:
        parsed.problems.append(Problem(file, refused.line, refused.message))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        what = "; ".join(part for part in (error.context, error.problem) if part)
        parsed.problems.append(Problem(file, line, f"YAML syntax error: {what}"))
    except yaml.YAMLError as error:
        parsed.problems.append(Problem(file, None, f"YAML error: {error}"))
    finally:
        parser.dispose()
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


class _Stream:
    """The parser's events; those read while an anchored value is open are kept, for its aliases to replay."""

    replaying = False

    def __init__(self, parser: yaml.CSafeLoader) -> None:
        self.parser = parser
        self.recorded: list[_Event] = []
        self.open_anchors: set[str] = set()

    def next(self) -> _Event:
        event = self.parser.get_event()
        if self.open_anchors:
            self.recorded.append(event)
        return event


class _Replay:
    """An anchored value's recorded events, read again where an alias repeats it."""

    replaying = True

    def __init__(self, events: list[_Event]) -> None:
        self.events = iter(events)

    def next(self) -> _Event:
        return next(self.events)


class _Builder:
    """Plain data straight from libyaml's parser events, in one pass with no node graph. Nesting is refused
    past MAX_DEPTH as it is met; an alias (`*name`) replays its anchor's events, counted against
    MAX_ALIAS_NODES."""

    def __init__(self, parser: yaml.CSafeLoader, parsed: ParsedYaml) -> None:
        self.parser = parser
        self.stream = _Stream(parser)
        self.parsed = parsed
        self.all_locations: dict[KeyPath, Location] = {}
        self.locations = self.all_locations  # where `build` records them: none while a value is skipped
        self.anchors: dict[str, tuple[int, int, _Event]] = {}  # name: its slice of recorded events, its event
        self.values = 0
        self.alias_nodes = 0  # values built again because an alias repeats them
        self.alias_line = 1  # where the outermost alias being expanded is used

    def document(self) -> Any:
        """The single document's data (None for an empty stream)."""
        self.parser.get_event()  # stream start
        if self.parser.check_event(StreamEndEvent):
            return None
        first: _Event = self.parser.get_event()  # document start
        data = self.build(self.stream, self.stream.next(), (), None)
        self.parser.get_event()  # document end
        if not self.parser.check_event(StreamEndEvent):
            second: _Event = self.parser.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                first.start_mark,
                "but found another document",
                second.start_mark,
            )
        return data

    def build(self, events: _Stream | _Replay, event: _Event, path: KeyPath, line: int | None) -> Any:
        """The value that starts with `event`; `line` is the line of its key or list item (None: its own)."""
        line = event.start_mark.line + 1 if line is None else line
        if isinstance(event, AliasEvent):
            return self._alias(event, path, line, events.replaying)
        if events.replaying or event.anchor is None:
            return self._value(events, event, path, line)
        anchor = event.anchor
        if anchor in self.anchors:
            raise yaml.composer.ComposerError(
                f"found duplicate anchor {anchor!r}; first occurrence",
                self.anchors[anchor][2].start_mark,
                "second occurrence",
                event.start_mark,
            )
        recorded = self.stream.recorded
        if not self.stream.open_anchors:  # else the stream has kept it already
            recorded.append(event)
        start = len(recorded) - 1
        self.stream.open_anchors.add(anchor)
        value = self._value(events, event, path, line)
        self.stream.open_anchors.discard(anchor)
        self.anchors[anchor] = (start, len(recorded), event)
        return value

    def _alias(self, event: _Event, path: KeyPath, line: int, replaying: bool) -> Any:
        if not replaying:
            self.alias_line = line
        if event.anchor in self.stream.open_anchors:  # `a: &a {b: *a}` would contain itself, endlessly
            raise _Refused(self.alias_line, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        if event.anchor not in self.anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark
            )
        start, end, _ = self.anchors[event.anchor]
        replay = _Replay(self.stream.recorded[start:end])
        return self._value(replay, replay.next(), path, line)

    def _value(self, events: _Stream | _Replay, event: _Event, path: KeyPath, line: int) -> Any:
        if len(path) > MAX_DEPTH:
            if events.replaying:
                raise _Refused(self.alias_line, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
            )
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Refused(line, f"more than {MAX_VALUES:,} values in one file; such files are far smaller")
        if events.replaying:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Refused(
                    self.alias_line,
                    f"aliases here expand to more than {MAX_ALIAS_NODES:,} values; write the values out",
                )
        value_line = event.start_mark.line + 1
        if isinstance(event, ScalarEvent) and event.style in ("|", ">"):
            value_line += 1
        self.locations[path] = Location(self.parsed.file, line, value_line)
        if isinstance(event, MappingStartEvent):
            mapping = self._mapping(events, path)
            return mapping if self._plain_tag(event, _MAP_TAG) else None
        if isinstance(event, SequenceStartEvent):
            items: list[Any] = []
            while not isinstance(item := events.next(), SequenceEndEvent):
                items.append(self.build(events, item, (*path, len(items)), item.start_mark.line + 1))
            return items if self._plain_tag(event, _SEQ_TAG) else None
        return self._scalar(event)

    def _mapping(self, events: _Stream | _Replay, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        while not isinstance(key_event := events.next(), MappingEndEvent):
            line = key_event.start_mark.line + 1
            key = self._key(events, key_event, path)
            value_event = events.next()
            if key is None:
                self._problem(line, "only plain names can be keys here (no lists, mappings or '<<' merges)")
                self._skip(events, value_event, path)
            elif key in first_line:
                self._problem(line, f"duplicate key {key!r} (first given on line {first_line[key]})")
                self._skip(events, value_event, path)
            else:
                first_line[key] = line
                result[key] = self.build(events, value_event, (*path, key), line)
        return result

    def _key(self, events: _Stream | _Replay, event: _Event, path: KeyPath) -> str | None:
        """The key's text as written: `on:` or `1:` stay names, not YAML 1.1 booleans or numbers. None for a
        key that is not a plain name (read past)."""
        if isinstance(event, AliasEvent) and event.anchor in self.anchors:
            start, end, _ = self.anchors[event.anchor]
            if end - start == 1:
                event = self.stream.recorded[start]
        if not isinstance(event, ScalarEvent):
            self._skip(events, event, path)
            return None
        plain = event.tag in (None, "!") and event.implicit[0]
        return None if event.tag == _MERGE_TAG or (plain and event.value == "<<") else event.value

    def _skip(self, events: _Stream | _Replay, event: _Event, path: KeyPath) -> None:
        """Read past the value that starts with `event`, keeping none of its locations (its anchors count)."""
        self.locations = {}
        self.build(events, event, (*path, ""), None)
        self.locations = self.all_locations

    def _scalar(self, event: _Event) -> Any:
        tag, value = event.tag, event.value
        if tag is None and (not event.implicit[0] or value[:1] not in _IMPLICIT_FIRST_CHARACTERS):
            return value  # quoted, or plain text no implicit type starts with: a string (a fast path)
        if tag is None or tag == "!":
            tag = self.parser.resolve(ScalarNode, value, event.implicit)
        if tag == _STR_TAG:
            return value
        node = ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)
        try:
            return self.parser.construct_object(node)
        except yaml.constructor.ConstructorError as error:
            self._problem(event.start_mark.line + 1, f"cannot read this value: {error.problem}")
            return None

    def _plain_tag(self, event: _Event, default_tag: str) -> bool:
        if event.tag not in (None, "!", default_tag):
            self._problem(event.start_mark.line + 1, f"YAML tags such as {event.tag!r} are not supported")
            return False
        return True

    def _problem(self, line: int, message: str) -> None:
        self.parsed.problems.append(Problem(self.parsed.file, line, message))
