"""Check a model `source` without loading anything: builtin alias, local path, or hub id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fslm.errors import FslmError
from fslm.spec.paths import is_dir, is_file, resolve_path
from fslm.spec.reporting import did_you_mean

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def builtin_aliases() -> set[str]:
    # imported here, not at module level: the runtime package is only needed once a spec is checked
    from fslm.runtime.builtin import BUILTIN_MODELS

    return set(BUILTIN_MODELS)


def looks_like_local_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.endswith(".gguf")


@dataclass(frozen=True)
class CheckedSource:
    source: str  # as it should be stored: local paths made absolute
    kind: str  # "builtin" | "local" | "hub"
    problem: str | None = None


def check_source(source: str, base_dir: Path) -> CheckedSource:
    """Classify `source`; local paths are resolved against `base_dir` (the pipeline file's directory)."""
    aliases = builtin_aliases()
    if source in aliases:
        return CheckedSource(source, "builtin")
    if looks_like_local_path(source):
        try:
            path = resolve_path(source, base_dir, "model")
        except FslmError as error:
            return CheckedSource(source, "local", str(error))
        return CheckedSource(str(path), "local", _local_path_problem(source, path))
    if _HUB_ID.match(source):
        return CheckedSource(source, "hub")
    return CheckedSource(
        source,
        "unknown",
        f"source {source!r} is not a builtin alias, a local path (start it with ./, / or ~, or end it with "
        f".gguf) or a hub id 'org/name'{did_you_mean(source, aliases, what='builtin aliases')}",
    )


def _local_path_problem(source: str, path: Path) -> str | None:
    if is_dir(path):
        if is_file(path / "config.json"):
            return None
        return (
            f"local model directory {source!r} ({path}) has no config.json, so it is not a Hugging Face model"
        )
    if is_file(path):
        if path.suffix == ".gguf":
            return None
        return (
            f"local model file {source!r} ({path}) is not a .gguf file; "
            "point at a model directory or a .gguf file"
        )
    return f"local model path {source!r} does not exist (looked for {path})"
