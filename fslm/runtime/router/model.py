"""`RouterModel`: a sentence encoder (mean-pooled, L2-normalised, as all-MiniLM-L6-v2 is used) and a linear
head with one output per expert."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from fslm.errors import FslmError
from fslm.runtime.router.checkpoint import WEIGHTS_FILE, RouterConfig, read_router_config
from fslm.runtime.router.encoder import encoder_directory

HEAD_PREFIX = "head."
ENCODER_PREFIX = "encoder."


class RouterModel(torch.nn.Module):
    def __init__(self, encoder: PreTrainedModel, tokenizer, experts: int, max_length: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.head = torch.nn.Linear(encoder.config.hidden_size, experts)

    @classmethod
    def from_encoder(cls, encoder: str, experts: int, max_length: int, seed: int = 0) -> RouterModel:
        """A new router on `encoder` (its name or directory), its head initialised from `seed`."""
        directory = encoder_directory(encoder)
        torch.manual_seed(seed)
        loaded = AutoModel.from_pretrained(directory, dtype=torch.float32)
        return cls(loaded.eval(), AutoTokenizer.from_pretrained(directory), experts, max_length)

    @classmethod
    def load(cls, checkpoint: Path) -> tuple[RouterModel, RouterConfig]:
        """The router saved in `checkpoint`, with its config; FslmError when it cannot be read."""
        config = read_router_config(checkpoint)
        model = cls.from_encoder(config.encoder, len(config.experts), config.max_length)
        try:
            weights = load_file(checkpoint / WEIGHTS_FILE)
        except (OSError, ValueError) as error:
            raise FslmError(f"cannot read the router weights {checkpoint / WEIGHTS_FILE}: {error}") from error
        model.head.load_state_dict(_with_prefix(weights, HEAD_PREFIX))
        if config.encoder_trained:
            model.encoder.load_state_dict(_with_prefix(weights, ENCODER_PREFIX))
        return model.eval(), config

    def tokens(self, queries: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(queries), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def embed(self, queries: Sequence[str]) -> torch.Tensor:
        """One unit vector per query: the mean of its tokens' last hidden states (padding excluded)."""
        batch = self.tokens(queries)
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, queries: Sequence[str]) -> torch.Tensor:
        """Logits over the experts, one row per query."""
        return self.head(self.embed(queries))

    def weights(self, with_encoder: bool) -> dict[str, torch.Tensor]:
        """What the checkpoint's weights file holds: the head, and the encoder when it was trained."""
        weights = {HEAD_PREFIX + key: value for key, value in self.head.state_dict().items()}
        if with_encoder:
            weights.update({ENCODER_PREFIX + key: value for key, value in self.encoder.state_dict().items()})
        return {key: value.detach().contiguous() for key, value in weights.items()}

    def save_weights(self, path: Path, with_encoder: bool) -> None:
        save_file(self.weights(with_encoder), str(path))


def _with_prefix(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in weights.items() if key.startswith(prefix)}
