"""The model being trained: a base with a fresh LoRA adapter, and the completion-only loss.

The loss runs the decoder over every token but the output layer only at completion positions: for a 49k
vocabulary the output layer is most of a small model's compute, and prompt positions have no loss.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional

from fslm.errors import FslmError
from fslm.finetune.batching import Batch
from fslm.finetune.recipe import LoraSpec
from fslm.runtime.device import resolve_device
from fslm.runtime.messages import one_line

TRAIN_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_base(base_dir: Path, dtype: str, device: str = "auto") -> tuple[Any, Any]:
    """The tokenizer and the model on `device`, chosen as the runtime chooses it (`auto`: CUDA, else MPS,
    else the CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        # Typed as the torch module it is: transformers' `wraps`-decorated `to` does not type-check.
        model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(
            base_dir, dtype=TRAIN_DTYPES[dtype], attn_implementation="sdpa"
        )
    except (OSError, ValueError) as error:
        raise FslmError(f"Could not load the model in {base_dir}: {one_line(error)}") from error
    return tokenizer, model.to(resolve_device(device))


def with_new_adapter(model: Any, lora: LoraSpec, seed: int, gradient_checkpointing: bool = False) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft annotates int; it only divides it by r
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers' deprecated is_gradient_checkpointing (its successor is
            # is_activation_checkpointing) in get_peft_model itself: no call of fslm's can avoid it.
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
            peft_model = get_peft_model(model, config)
    except ValueError as error:
        raise FslmError(f"lora.target_modules does not fit this model: {one_line(error)}") from error
    if gradient_checkpointing:
        # Non-reentrant checkpointing needs no gradient on the inputs, which a frozen embedding would not
        # give.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return peft_model


def completion_loss(peft_model: Any, batch: Batch) -> tuple[torch.Tensor, int]:
    """The summed cross-entropy of the batch's completion tokens (each scaled by its example's weight when the
    batch has weights), and how many there are."""
    logits = completion_logits(peft_model, batch)
    labels = batch.labels.to(logits.device)
    if batch.label_weights is None:
        loss = functional.cross_entropy(logits, labels, reduction="sum")
    else:
        weights = batch.label_weights.to(logits.device)
        loss = (functional.cross_entropy(logits, labels, reduction="none") * weights).sum()
    return loss, int(batch.labels.numel())


def completion_logits(peft_model: Any, batch: Batch) -> torch.Tensor:
    """The next-token logits (float32) at each of the batch's completion positions, in label order."""
    causal_lm = peft_model.get_base_model()
    device = causal_lm.device  # batches are built on the CPU
    hidden = causal_lm.get_decoder()(
        input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device), use_cache=False
    ).last_hidden_state
    selected = hidden[batch.loss_rows.to(device), batch.loss_positions.to(device)]
    logits = causal_lm.get_output_embeddings()(selected).float()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits
