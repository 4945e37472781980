"""Resumable checkpoints: the adapter's weights, the optimizer and scheduler, RNG state and progress so
far."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fslm.errors import FslmError
from fslm.files import replace_directory, staging_directory
from fslm.runtime.messages import one_line

STATE_FILE = "trainer_state.pt"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
STATE_KEYS = ("optimizer", "scheduler", "rng", "progress")


def save_checkpoint(directory: Path, peft_model: Any, optimizer: Any, scheduler: Any, progress: dict) -> None:
    """Write the checkpoint beside `directory`, then swap it in, so a crash leaves the old one or the new
    one."""
    staging = staging_directory(directory)
    peft_model.save_pretrained(staging, safe_serialization=True)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "progress": progress,
        },
        staging / STATE_FILE,
    )
    replace_directory(directory)


def load_checkpoint(
    directory: Path,
    peft_model: Any,
    optimizer: Any,
    scheduler: Any,
    fingerprint: str,
    progress_types: Mapping[str, tuple[type, ...]],
) -> dict:
    """Restore a checkpoint into the (freshly built) model, optimizer and scheduler; returns its progress,
    whose keys and their types must be `progress_types`'s (a hand-edited one may not be)."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise FslmError(f"nothing to resume: no checkpoint in {directory}")
    try:
        state = torch.load(state_path, weights_only=True)
        if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
            raise ValueError(f"{STATE_FILE} is not a trainer state")
        progress = state["progress"]
        if not isinstance(progress, dict) or progress.get("fingerprint") != fingerprint:
            raise FslmError(
                f"the checkpoint in {directory} was made with another recipe or other data; "
                "resume with the same recipe and data, or start afresh with --force"
            )
        problem = _progress_problem(progress, progress_types)
        if problem is not None:
            raise ValueError(problem)
        set_peft_model_state_dict(peft_model, load_file(directory / ADAPTER_WEIGHTS))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
    except (
        OSError,
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        EOFError,
        pickle.UnpicklingError,
        SafetensorError,
    ) as error:
        raise FslmError(
            f"the checkpoint in {directory} is damaged ({one_line(error)}); start afresh with --force"
        ) from error
    return progress


def _progress_problem(progress: dict, types: Mapping[str, tuple[type, ...]]) -> str | None:
    unknown, missing = sorted(set(progress) - set(types)), sorted(set(types) - set(progress))
    if unknown or missing:
        listed = []
        if unknown:
            listed.append(f"unknown {', '.join(unknown)}")
        if missing:
            listed.append(f"missing {', '.join(missing)}")
        return f"its progress keys do not match: {'; '.join(listed)}"
    for key, kinds in types.items():
        value = progress[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return f"its progress {key} is {value!r}"
    return None
