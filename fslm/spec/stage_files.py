"""Reusable stage files (`stages/NAME.yaml`) and merging them with a pipeline's inline keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.spec.file_format import stage_file_model
from fslm.spec.paths import is_file, resolve_path
from fslm.spec.problems import Problem, display_path
from fslm.spec.reporting import ProblemSink, without_unknown_keys
from fslm.spec.yaml_source import KeyPath, Location, ParsedYaml, read_yaml_file

# `use: NAME` names a file in a stages directory: no separators, no `..`, no hidden files.
_STAGE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def stage_dirs(pipeline_dir: Path) -> list[Path]:
    """Where `use: NAME` looks, in order."""
    return [pipeline_dir / "stages", pipeline_dir.parent / "stages"]


def find_stage_file(name: str, pipeline_dir: Path) -> Path | None:
    """The stage file `use: name` means, None when there is none; FslmError when `name` is not a plain name
    or the file is a symlink to somewhere outside its stages directory."""
    if not _STAGE_FILE_NAME.fullmatch(name):
        raise FslmError(
            f"'use' takes the plain name of a stage file, such as 'plan' for stages/plan.yaml (at most 100 "
            f"letters, digits, '_', '-' and '.', not starting with '.'); {name!r} is not one"
        )
    for directory in stage_dirs(pipeline_dir):
        candidate = directory / f"{name}.yaml"
        if is_file(candidate):
            found = resolve_path(candidate)
            if not found.is_relative_to(resolve_path(directory)):
                raise FslmError(
                    f"stage file {display_path(candidate)} is a link to {found}, outside "
                    f"{display_path(directory)}; stage files are read from the stages directories only"
                )
            return found
    return None


def available_stage_files(pipeline_dir: Path) -> list[str]:
    return sorted({path.stem for directory in stage_dirs(pipeline_dir) for path in directory.glob("*.yaml")})


@dataclass
class StageFile:
    path: Path
    raw: bytes
    parsed: ParsedYaml

    @property
    def data(self) -> dict[str, Any]:
        return self.parsed.data if isinstance(self.parsed.data, dict) else {}


def read_stage_file(path: Path) -> tuple[StageFile, list[Problem]]:
    """Parse a stage file and check its own keys; problems point at lines in that file."""
    raw, parsed = read_yaml_file(path, "stage file")
    problems = list(parsed.problems)
    if parsed.data is None and not parsed.problems:
        problems.append(Problem(path, None, "stage file is empty; expected a mapping of stage keys"))
    elif parsed.data is not None and not isinstance(parsed.data, dict):
        problems.append(Problem(path, parsed.line_of(()), "a stage file must be a mapping of stage keys"))
    else:
        sink = ProblemSink(path, parsed.locations, root=f"stage file {display_path(path)!r}")
        sink.check_unknown_keys(stage_file_model(), parsed.data)
        problems += sink.problems
    return StageFile(path, raw, parsed), problems


def merge_stage(
    used: StageFile, inline: dict[str, Any], inline_path: KeyPath, locations: dict[KeyPath, Location]
) -> dict[str, Any]:
    """The used file's keys overridden by the inline ones (`generation` key by key), without `use`.

    Locations of keys that come from the used file are added to `locations` under the stage's path, so
    problems with them point at the stage file's lines.
    """
    inline_generation = inline.get("generation")
    overridden_generation = set(inline_generation) if isinstance(inline_generation, dict) else set()
    merged: dict[str, Any] = {}
    for key, value in without_unknown_keys(stage_file_model(), used.data).items():
        if key in inline and not _both_mappings(key, value, inline):
            continue
        merged[key] = dict(value) if key == "generation" and isinstance(value, dict) else value
        for path, location in used.parsed.locations.items():
            if path[:1] == (key,):
                if key == "generation" and len(path) > 1 and path[1] in overridden_generation:
                    continue
                locations.setdefault((*inline_path, *path), location)
    for key, value in inline.items():
        if key == "use":
            continue
        if _both_mappings(key, merged.get(key), inline):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _both_mappings(key: str, used_value: Any, inline: dict[str, Any]) -> bool:
    return key == "generation" and isinstance(used_value, dict) and isinstance(inline.get(key), dict)
