"""A base model in memory: weights, tokenizer, and the LoRA adapters attached to it as named peft adapters."""

from __future__ import annotations

import json
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from fslm.errors import FslmError
from fslm.runtime.base_identity import base_identity, identity_mismatch, read_identity
from fslm.runtime.device import TORCH_DTYPES, attention_implementation
from fslm.runtime.messages import one_line
from fslm.runtime.prefix_cache import PrefixCache

BASE_ADAPTER_NAME = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch


@dataclass(frozen=True)
class BaseKey:
    """Identity of a loaded base: handles that resolve to the same directory, dtype and device share one."""

    path: Path
    dtype: str  # concrete: float32 | bfloat16 | float16
    device: str = "cpu"  # concrete: cpu | cuda:N | mps


class LoadedBase:
    """One base model and its adapters. `lock` serialises forward passes and adapter loading on it."""

    def __init__(self, key: BaseKey, model: Any, tokenizer: Any, load_seconds: float) -> None:
        self.key = key
        self.model = model
        self.tokenizer = tokenizer
        self.load_seconds = load_seconds
        self.lock = threading.RLock()
        self.peft_model: Any | None = None  # set when the first adapter is attached
        self._adapter_names: dict[Path, str] = {}
        self._adapters_tried = 0  # numbers adapter names; a failed attach must not reuse its name
        self._plain_path: str | None = None  # what peft's plain path runs, once `forward` has switched it
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.device = model.device
        # Batches can be joined and trimmed, and prefixes reused, only where every layer caches every
        # position: a sliding-window layer (Gemma 3) keeps a window whose columns cannot be re-aligned.
        self.joinable = all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)
        # The computed prefixes every decode path on this base reuses (guarded by `lock`); the runtime that
        # loads the base sets it, None where prefixes are not reused.
        self.prefixes: PrefixCache | None = None

    @classmethod
    def load(cls, key: BaseKey) -> LoadedBase:
        started = time.perf_counter()
        device = torch.device(key.device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(key.path)
            # Typed as the torch module it is: transformers' `wraps`-decorated `to` does not type-check.
            model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(
                key.path, dtype=TORCH_DTYPES[key.dtype], attn_implementation=attention_implementation(device)
            )
        except (OSError, ValueError) as error:
            raise FslmError(f"Could not load the model in {key.path}: {one_line(error)}") from error
        model.to(device)
        model.eval()
        return cls(key, model, tokenizer, time.perf_counter() - started)

    def forward(self, adapter_names: list[str], **model_kwargs: Any) -> Any:
        """A forward pass where row i uses adapter `adapter_names[i]` (BASE_ADAPTER_NAME for none).

        Use this rather than `self.model(...)`: once an adapter is attached, the LoRA layers live inside
        `self.model` too, and only this method keeps base rows adapter-free (by peft's `adapter_names`
        routing in a mixed batch, by disabling the adapter layers in a batch of base rows).
        """
        names = set(adapter_names)
        if self.peft_model is None:
            if names - {BASE_ADAPTER_NAME}:
                raise ValueError(f"no adapters are attached, but rows ask for {sorted(names)}")
            return self.model(**model_kwargs)
        if len(names) > 1:
            if self._plain_path == BASE_ADAPTER_NAME:
                self.peft_model.base_model.enable_adapter_layers()
                self._plain_path = self.peft_model.active_adapter
            return self.peft_model(adapter_names=adapter_names, **model_kwargs)
        # One adapter (or none) for every row: peft's plain path gives the same numbers as its mixed-batch
        # routing, which hooks every LoRA layer on every pass (a fifth of a batch-1 decode step).
        self._switch_plain_path(names.pop())
        return self.peft_model(**model_kwargs)

    def _switch_plain_path(self, name: str) -> None:
        """Make peft's plain path run adapter `name` (BASE_ADAPTER_NAME: adapters disabled). Only a change
        switches: each of peft's switches walks every module."""
        if name == self._plain_path:
            return
        assert self.peft_model is not None
        if name == BASE_ADAPTER_NAME:
            self.peft_model.base_model.disable_adapter_layers()
        else:
            if self._plain_path == BASE_ADAPTER_NAME:
                self.peft_model.base_model.enable_adapter_layers()
            if self.peft_model.active_adapter != name:
                self.peft_model.set_adapter(name, inference_mode=True)
        self._plain_path = name

    @property
    def adapters(self) -> dict[Path, str]:
        """Attached adapters: adapter directory → peft adapter name."""
        return dict(self._adapter_names)

    def adapter_name(self, adapter_dir: str | None) -> str:
        """The peft adapter name for `adapter_dir`, attaching the adapter on first use."""
        if adapter_dir is None:
            return BASE_ADAPTER_NAME
        path = Path(adapter_dir).expanduser().resolve()
        with self.lock:
            if path in self._adapter_names:
                return self._adapter_names[path]
            _check_adapter_dir(path)
            self._check_adapter_base(path)
            # peft names become module-dict keys, which cannot contain dots; a counter keeps them valid.
            name = f"adapter_{self._adapters_tried}"
            self._adapters_tried += 1
            try:
                if self.peft_model is None:
                    from peft import PeftModel

                    with warnings.catch_warnings():
                        # peft reads transformers' deprecated is_gradient_checkpointing: not the user's doing.
                        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
                        self.peft_model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
                    self.peft_model.eval()
                else:
                    self.peft_model.load_adapter(path, adapter_name=name)
            except (OSError, ValueError, RuntimeError, KeyError) as error:
                raise FslmError(
                    f"Could not attach the LoRA adapter in {path} to the model in {self.key.path}: "
                    f"{one_line(error)}. Is it an adapter trained for this base model?"
                ) from error
            self._adapter_names[path] = name
            return name

    def _check_adapter_base(self, path: Path) -> None:
        """Refuse an adapter whose recorded base (written by `fslm finetune`) is not this model."""
        recorded = read_identity(path)
        if recorded is None:
            return
        problem = identity_mismatch(recorded, base_identity(self.model, str(self.key.path)))
        if problem:
            raise FslmError(
                f"The LoRA adapter in {path} was trained on another base model ({recorded.get('source')}) "
                f"than the one it is attached to here ({self.key.path}): {problem}."
            )


def _check_adapter_dir(path: Path) -> None:
    if not path.is_dir():
        raise FslmError(f"LoRA adapter directory {path} does not exist.")
    config = path / "adapter_config.json"
    if not config.is_file():
        raise FslmError(
            f"{path} is not a peft adapter directory: it has no adapter_config.json "
            "(an adapter is saved with PeftModel.save_pretrained)."
        )
    try:
        json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise FslmError(f"The adapter config {config} cannot be read: {one_line(error)}") from error


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (
        tokenizer.eos_token_id,
        getattr(model.generation_config, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
    ):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)
