"""Model references → a local Hugging Face directory that `from_pretrained` can load.

A source is tried, in order, as: a builtin alias, a local HF directory, a `.gguf` file, a Hugging Face hub id.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from fslm.errors import ModelNotFoundError
from fslm.runtime.builtin import BUILTIN_MODELS, builtin_gguf_path
from fslm.runtime.gguf import converted_gguf
from fslm.runtime.messages import one_line

# A hub repo id: "name" or "org/name", letters, digits, "-", "_", ".".
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


@dataclass(frozen=True)
class ResolvedModel:
    source: str  # as the user wrote it
    kind: str  # "builtin" | "local" | "gguf" | "hub"
    path: Path  # a directory with config.json, weights and tokenizer


def resolve_model(
    source: str, revision: str | None = None, *, cache_dir: Path | None = None, force: bool = False
) -> ResolvedModel:
    """Find or build a local directory for `source`; ModelNotFoundError lists what was tried. `force`
    converts a GGUF model again, replacing its cache entry."""
    if source in BUILTIN_MODELS:
        gguf = builtin_gguf_path(source)
        return ResolvedModel(source, "builtin", converted_gguf(source, gguf, source, cache_dir, force=force))

    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(
                f"Model directory {local.resolve()} has no config.json, so it is not a Hugging Face model "
                "directory. Point the model source at a directory written by save_pretrained, a .gguf file, "
                f"a hub id, or a builtin alias ({', '.join(sorted(BUILTIN_MODELS))})."
            )
        return ResolvedModel(source, "local", local.resolve())
    if local.suffix == ".gguf" and local.is_file():
        return ResolvedModel(
            source, "gguf", converted_gguf(local.stem, local, str(local.resolve()), cache_dir, force=force)
        )

    tried = [
        f"no builtin alias is named {source!r}",
        f"no local directory or .gguf file exists at {local.resolve()}",
    ]
    if _looks_like_path(source) or not _HUB_ID.match(source):
        tried.append("it is not a valid Hugging Face hub id, so the hub was not asked")
    else:
        try:
            return ResolvedModel(source, "hub", _download_from_hub(source, revision))
        except Exception as error:  # noqa: BLE001 - any hub failure is a user-facing "not found"
            at = f" at revision {revision!r}" if revision else ""
            tried.append(f"the Hugging Face hub lookup of {source!r}{at} failed ({one_line(error)})")
    close = difflib.get_close_matches(source, list(BUILTIN_MODELS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelNotFoundError(
        f"Model {source!r} was not found: {'; '.join(tried)}.{hint} A model source can be a builtin alias "
        f"({', '.join(sorted(BUILTIN_MODELS))}), a local model directory, a .gguf file, or a hub id "
        "that is reachable from this machine."
    )


def prepare(
    source: str, revision: str | None = None, *, cache_dir: Path | None = None, force: bool = False
) -> Path:
    """Resolve `source` now (converting and caching a GGUF model; again with `force`) and return its local
    directory."""
    return resolve_model(source, revision, cache_dir=cache_dir, force=force).path


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", ".")) or source.endswith(".gguf") or "\\" in source


def _download_from_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_FILES))
    if not any(path.glob("*.safetensors")):
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=[*_HUB_FILES, "*.bin"]))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the hub repo {repo_id!r} has no config.json")
    return path
