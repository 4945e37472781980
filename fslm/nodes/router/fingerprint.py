"""The fingerprints of a router's experts: a router checkpoint records them, and the spec layer refuses a
checkpoint whose experts' adapters have changed since it was trained (`fslm.nodes.router.spec`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fslm.spec.models import StageSpecBase


def adapter_directories(stage: StageSpecBase) -> list[Path]:
    """Every adapter directory a stage uses: its own, or its ensemble members'."""
    own = getattr(stage, "adapter", None)
    ensemble = getattr(stage, "ensemble", None)
    members = ensemble.members if ensemble is not None else []
    return [path for path in [own, *(member.adapter for member in members)] if path is not None]


def expert_fingerprint(stage: StageSpecBase) -> str:
    """sha256 over the files of every adapter the stage uses (names and bytes, in order); an expert without
    an adapter hashes to the digest of nothing. A retrained adapter changes it."""
    digest = hashlib.sha256()
    for directory in adapter_directories(stage):
        for file in sorted(path for path in directory.iterdir() if path.is_file()):
            digest.update(file.name.encode() + b"\0")
            digest.update(file.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()
