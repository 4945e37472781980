"""Parse YAML (safe tags only) into plain data plus the file line of every key, for error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fslm.spec.problems import Problem

KeyPath = tuple[str | int, ...]

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


def parse_yaml(file: Path, text: str) -> ParsedYaml:
    """Parse `text` (the contents of `file`); syntax errors and duplicate keys become problems, not exceptions."""
    parsed = ParsedYaml(file)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            parsed.data = _Builder(loader, parsed).build(root, (), root.start_mark.line + 1)
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


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, parsed: ParsedYaml) -> None:
        self.loader = loader
        self.parsed = parsed

    def build(self, node: Node, path: KeyPath, line: int) -> Any:
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
