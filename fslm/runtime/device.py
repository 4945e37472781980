"""Where a model runs and in what dtype: a model handle's `device` and `dtype` made concrete for this machine.

`auto` picks CUDA when torch sees a GPU, else Apple's MPS, else the CPU; dtype `auto` is bfloat16 on CUDA and
float32 elsewhere. Fine-tuning makes the same choice (`fslm.finetune.model.load_base`).
"""

from __future__ import annotations

import torch

from fslm.errors import FslmError

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """The torch device for a handle's `device` (auto | cpu | cuda | cuda:N | mps)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FslmError(
                f"device '{name}' was asked for, but this torch ({torch.__version__}) sees no CUDA GPU. "
                "Use device: auto or cpu, or install a CUDA build of torch."
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise FslmError(
                f"device '{name}' was asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered from 0."
            )
        return torch.device(name)
    if name == "mps" and not torch.backends.mps.is_available():
        raise FslmError("device 'mps' was asked for, but torch reports Apple's MPS backend unavailable.")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> str:
    """The concrete dtype name for a handle's `dtype` on `device`."""
    if name != "auto":
        return name
    return "bfloat16" if device.type == "cuda" else "float32"


def attention_implementation(device: torch.device) -> str:
    """Eager attention on the CPU: a left-padded row's logits then match the row alone (float32: both eager
    and SDPA within ~4e-5, from GEMM blocking; bfloat16: eager identical, SDPA off by up to 0.4, measured on
    SmolLM2), at about 6% of decode time at batch 16. SDPA on accelerators, where its fused kernels are the
    point and batch-shape rounding is accepted (docs/models.md states the equality each setting keeps)."""
    return "eager" if device.type == "cpu" else "sdpa"
