"""Where fslm keeps converted checkpoints, and what is there."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from fslm.errors import FslmError

SOURCE_RECORD = "fslm-source.json"  # written into each converted model directory


def cache_root(override: Path | None = None) -> Path:
    """`override`, else $FSLM_CACHE_DIR, else $XDG_CACHE_HOME/fslm, else ~/.cache/fslm."""
    if override is not None:
        return Path(override).expanduser()
    if env := os.environ.get("FSLM_CACHE_DIR"):
        return Path(env).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "fslm"
    return Path.home() / ".cache" / "fslm"


def models_dir(override: Path | None = None) -> Path:
    return cache_root(override) / "models"


def converted_dir_for(name: str, gguf_path: Path, override: Path | None = None) -> Path:
    """The cache directory for `gguf_path`; a changed file (size or mtime) gets a new directory."""
    resolved = gguf_path.resolve()
    stat = resolved.stat()
    key = f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return models_dir(override) / f"{name}-{digest}"


def conversion_done(directory: Path) -> bool:
    """Whether `directory` holds a finished conversion: its record is there. FslmError naming the record
    when it is damaged (not JSON, or not fslm's), for the cached model may be too."""
    record_path = directory / SOURCE_RECORD
    if not record_path.is_file():
        return False
    try:
        record = json.loads(record_path.read_bytes())
    except (OSError, ValueError) as error:
        reason = f"cannot be read ({error})"
    else:
        if isinstance(record, dict) and isinstance(record.get("source"), str):
            return True
        reason = "is not a conversion record"
    raise FslmError(
        f"the model cache entry {directory} is damaged: {record_path} {reason}. Rebuild it with "
        "`fslm models pull --force ALIAS` (a builtin model), or delete the directory to convert again"
    )


@dataclass(frozen=True)
class CachedModel:
    name: str  # directory name, e.g. smollm2-135m-instruct-1a2b3c4d5e6f
    path: Path
    source: str  # the builtin alias or GGUF path it was converted from
    size_bytes: int


def list_cached(override: Path | None = None) -> list[CachedModel]:
    """Converted models in the cache, sorted by name. Unfinished conversions (temp dirs) are not listed."""
    root = models_dir(override)
    if not root.is_dir():
        return []
    cached = []
    for path in sorted(root.iterdir()):
        record_path = path / SOURCE_RECORD
        if not path.is_dir() or path.name.startswith(".") or not record_path.is_file():
            continue
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        cached.append(
            CachedModel(name=path.name, path=path, source=str(record.get("source", "")), size_bytes=size)
        )
    return cached
