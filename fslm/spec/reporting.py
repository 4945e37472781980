"""Turn findings into `Problem`s that name the file, the line, the thing and the valid alternatives."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fslm.spec.problems import MOST_PROBLEMS, Problem
from fslm.spec.yaml_source import KeyPath, Location

_MOST_LISTED = 20  # choices named in one message; a file with thousands of stages must not print them all
_MOST_COMPARED = 1000  # choices searched for a close match: each search costs a comparison per choice


def did_you_mean(name: str, choices: Iterable[str], *, what: str = "valid") -> str:
    """'; did you mean 'x'? (valid: a, b, c)' — or just the list when nothing is close."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(name, options, n=1) if len(options) <= _MOST_COMPARED else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} ({what}: {listing(options)})"


def listing(names: list[str]) -> str:
    """`names` joined with commas, the first few only when there are many."""
    if not names:
        return "none"
    shown = ", ".join(names[:_MOST_LISTED])
    return f"{shown}, … ({len(names) - _MOST_LISTED} more)" if len(names) > _MOST_LISTED else shown


def describe_path(path: KeyPath, root: str | None = None) -> str:
    """A readable name for a key path: ("stages", "plan", "generation", "top_p") → "stage 'plan'
    generation.top_p"."""
    things: list[str] = [root] if root else []
    rest: list[str] = []
    index = 0
    while index < len(path):
        part, following = path[index], path[index + 1] if index + 1 < len(path) else None
        if not rest and part in ("models", "stages") and following is not None:
            things.append(f"{'model' if part == 'models' else 'stage'} {following!r}")
            index += 2
        elif not rest and part in ("edges", "when") and isinstance(following, int):
            things.append(f"{'edge' if part == 'edges' else 'case'} {following + 1}")
            index += 2
        elif isinstance(part, int):
            rest.append(f"[{part}]")
            index += 1
        else:
            rest.append(f".{part}" if rest else str(part))
            index += 1
    words = things + (["".join(rest)] if rest else [])
    return " ".join(words) if words else "the top level"


class ProblemSink:
    """Collects problems about one logical document whose keys may come from several files."""

    def __init__(self, file: Path, locations: dict[KeyPath, Location], root: str | None = None) -> None:
        self.file = file
        self.locations = locations
        self.root = root  # e.g. "stage file 'plan.yaml'" when paths are relative to a stage file
        self.problems: list[Problem] = []

    @property
    def is_full(self) -> bool:
        """Enough problems found: further checks would only make the report longer (and take time)."""
        return len(self.problems) >= MOST_PROBLEMS

    def locate(self, path: KeyPath) -> Location | None:
        """The location of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            location = self.locations.get(path[:end])
            if location is not None:
                return location
        return None

    def add(self, path: KeyPath, message: str, *, at_value: bool = False) -> None:
        location = self.locate(path)
        if location is None:
            self.problems.append(Problem(self.file, None, message))
        else:
            line = location.value_line if at_value else location.line
            self.problems.append(Problem(location.file, line, message))

    def add_at_line(self, file: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(file, line, message))

    def describe(self, path: KeyPath) -> str:
        return describe_path(path, self.root)

    def check_unknown_keys(self, model: type[BaseModel], data: Any, path: KeyPath = ()) -> None:
        """Report keys that `model` (recursively) does not define, suggesting the closest valid key."""
        if not isinstance(data, dict):
            return
        fields = {(info.alias or name): info.annotation for name, info in model.model_fields.items()}
        for key, value in data.items():
            if key not in fields:
                where = self.describe(path)
                self.add(
                    (*path, key),
                    f"unknown key {key!r} in {where}{did_you_mean(key, fields, what='valid keys')}",
                )
                continue
            nested = _nested_model(fields[key])
            if nested is None:
                continue
            shape, nested_model = nested
            if shape == "model":
                self.check_unknown_keys(nested_model, value, (*path, key))
            elif shape == "dict" and isinstance(value, dict):
                for item_key, item in value.items():
                    self.check_unknown_keys(nested_model, item, (*path, key, item_key))
            elif shape == "list" and isinstance(value, list):
                for item_index, item in enumerate(value):
                    self.check_unknown_keys(nested_model, item, (*path, key, item_index))

    def add_validation_error(self, error: ValidationError, data: Any, path: KeyPath = ()) -> None:
        """Report pydantic's errors for `data` (found at `path`); unknown keys are left to
        check_unknown_keys."""
        for detail in error.errors():
            if detail["type"] == "extra_forbidden":
                continue
            relative = _data_path(data, detail["loc"])
            where = self.describe((*path, *relative))
            message = detail["msg"].removeprefix("Value error, ")
            if detail["type"] == "missing":
                owner = self.describe((*path, *relative[:-1]))
                self.add((*path, *relative), f"{owner} is missing required key {detail['loc'][-1]!r}")
            elif detail["type"] in _NO_INPUT_ECHO or not _is_scalar(detail["input"]):
                self.add((*path, *relative), f"{where}: {message}")
            else:
                self.add((*path, *relative), f"{where}: {message} (got {detail['input']!r})")


# errors whose message already shows the value (or where echoing it would not help)
_NO_INPUT_ECHO = {"literal_error", "model_type", "dict_type", "list_type", "value_error"}


def without_unknown_keys(model: type[BaseModel], data: Any) -> Any:
    """`data` without the keys `model` (recursively) does not define, so one typo does not hide other
    checks."""
    if not isinstance(data, dict):
        return data
    fields = {(info.alias or name): info.annotation for name, info in model.model_fields.items()}
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            continue
        nested = _nested_model(fields[key])
        if nested is None:
            result[key] = value
            continue
        shape, nested_model = nested
        if shape == "model":
            result[key] = without_unknown_keys(nested_model, value)
        elif shape == "dict" and isinstance(value, dict):
            result[key] = {
                item_key: without_unknown_keys(nested_model, item) for item_key, item in value.items()
            }
        elif shape == "list" and isinstance(value, list):
            result[key] = [without_unknown_keys(nested_model, item) for item in value]
        else:
            result[key] = value
    return result


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _data_path(data: Any, loc: tuple[int | str, ...]) -> KeyPath:
    """The part of a pydantic error location that names real keys in `data`: drops union-member tags and
    the like."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str):
            path.append(part)  # a missing key: still worth naming
            break
        else:
            break
        path.append(part)
    return tuple(path)


def _nested_model(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """Whether a field holds a model, a dict of models or a list of models (through Optional/Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _nested_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            found = _nested_model(member)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return ("dict", args[1])
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return ("list", args[0])
    return None
