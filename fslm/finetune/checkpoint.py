"""Resumable checkpoints: the adapter's weights, the optimizer and scheduler, RNG state and progress so far."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from fslm.errors import FslmError

STATE_FILE = "trainer_state.pt"


def save_checkpoint(directory: Path, peft_model: Any, optimizer: Any, scheduler: Any, progress: dict) -> None:
    """Write the checkpoint beside `directory`, then swap it in, so a crash never leaves half of one."""
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
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
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)


def load_checkpoint(directory: Path, peft_model: Any, optimizer: Any, scheduler: Any, fingerprint: str) -> dict:
    """Restore a checkpoint into the (freshly built) model, optimizer and scheduler; returns its progress."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise FslmError(f"nothing to resume: no checkpoint in {directory}")
    state = torch.load(state_path, weights_only=True)
    progress = state["progress"]
    if progress["fingerprint"] != fingerprint:
        raise FslmError(
            f"the checkpoint in {directory} was made with another recipe or other data; "
            "resume with the same recipe and data, or start afresh with --force"
        )
    set_peft_model_state_dict(peft_model, load_file(directory / "adapter_model.safetensors"))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return progress
