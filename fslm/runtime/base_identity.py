"""What identifies a base model to an adapter trained on it, wherever and in whichever dtype it is loaded.

A path cannot: a builtin model lives in a per-user cache, and one checkpoint may sit in several places. The
identity is the architecture's shape plus a sample of the input embeddings, compared with a tolerance that
bfloat16 rounding passes and any other checkpoint (even a fine-tune of the same base) does not.
fslm writes it as `fslm_base.json` beside the adapter it trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fslm.errors import FslmError

IDENTITY_FILE = "fslm_base.json"
_SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")
_SAMPLE_ROWS = 8
_SAMPLE_COLUMNS = 8
_RELATIVE_TOLERANCE = 1e-2  # bfloat16 keeps ~3 significant digits


def base_identity(model: Any, source: str) -> dict[str, Any]:
    """The identity of a loaded causal LM; `source` is kept only to name the base in messages."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    weight = model.get_input_embeddings().weight.detach()
    rows = [round(i * (weight.shape[0] - 1) / (_SAMPLE_ROWS - 1)) for i in range(_SAMPLE_ROWS)]
    sample = weight[rows, :_SAMPLE_COLUMNS].float().flatten().tolist()
    return {
        "source": source,
        "shape": {key: getattr(config, key, None) for key in _SHAPE_KEYS},
        "embedding_sample": [float(f"{value:.6g}") for value in sample],
    }


def identity_mismatch(recorded: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """Why `actual` is not the base `recorded` describes, or None when it is."""
    different = [
        f"{key} {recorded['shape'].get(key)} vs {actual['shape'].get(key)}"
        for key in _SHAPE_KEYS
        if recorded["shape"].get(key) != actual["shape"].get(key)
    ]
    if different:
        return "its shape differs (" + ", ".join(different) + ")"
    pairs = zip(recorded["embedding_sample"], actual["embedding_sample"], strict=False)
    scale = max((abs(value) for value in recorded["embedding_sample"]), default=1.0)
    if len(recorded["embedding_sample"]) != len(actual["embedding_sample"]) or any(
        abs(a - b) > _RELATIVE_TOLERANCE * abs(a) + 1e-4 * scale for a, b in pairs
    ):
        return "its weights differ (same shape, another checkpoint)"
    return None


def read_identity(adapter_dir: Path) -> dict[str, Any] | None:
    """The base recorded beside an adapter (None: none is); FslmError naming the file when it is damaged."""
    path = adapter_dir / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise FslmError(f"{path} is damaged ({error}); delete it to load the adapter unchecked") from error
    if not isinstance(recorded, dict) or not {"shape", "embedding_sample"} <= set(recorded):
        raise FslmError(f"{path} is damaged: it is not the base record fslm writes beside an adapter")
    if not isinstance(recorded["shape"], dict) or not isinstance(recorded["embedding_sample"], list):
        raise FslmError(f"{path} is damaged: its shape or embedding sample is not what fslm writes")
    return recorded
