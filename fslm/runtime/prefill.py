"""The prefill forward pass: prompts whose leading tokens may already be computed (a prefix entry) go
through the model together; only the rest of each prompt is computed.

A row's columns in the batch cache are `[pad][cached prefix][pad][fresh tokens]`: the cached parts are
left-padded to the longest one, the fresh parts to theirs. Padding is masked out and every real token keeps
the position it has when the prompt runs alone, so the holes change nothing but the shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import CacheLayerMixin

from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefix_cache import PrefixEntry


@dataclass
class PromptPart:
    """One prompt to prefill: its adapter, its ids, and the entry holding its first `cached` ids' states."""

    adapter_name: str
    ids: list[int]
    entry: PrefixEntry | None = None
    cached: int = 0

    @property
    def fresh(self) -> list[int]:
        return self.ids[self.cached :]


@dataclass
class Prefilled:
    """What a prefill leaves: the batch cache, its attention mask (one column per cache column), each row's
    next position, and each row's last-position logits (float32)."""

    cache: DynamicCache
    attention_mask: torch.Tensor
    next_position: torch.Tensor
    logits: torch.Tensor
    cached_width: int

    def columns(self, part: PromptPart) -> list[int]:
        """The cache columns of `part`'s prompt tokens, in order, when `part` is this prefill's row."""
        width = self.attention_mask.shape[1]
        return [
            *range(self.cached_width - part.cached, self.cached_width),
            *range(width - len(part.fresh), width),
        ]


def prefill(base: LoadedBase, parts: list[PromptPart]) -> Prefilled:
    """Run the uncached part of every prompt through the model in one forward pass. The caller holds
    `base.lock` and inference mode."""
    # The model's own device, not LoadedBase's attribute: scoring during fine-tuning passes a stand-in base.
    device = base.model.device
    cached_width = max(part.cached for part in parts)
    fresh_width = max(len(part.fresh) for part in parts)
    rows = len(parts)
    input_ids = torch.full((rows, fresh_width), base.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((rows, cached_width + fresh_width), dtype=torch.long)
    position_ids = torch.zeros((rows, fresh_width), dtype=torch.long)
    for i, part in enumerate(parts):
        fresh = part.fresh
        input_ids[i, fresh_width - len(fresh) :] = torch.tensor(fresh)
        attention_mask[i, cached_width - part.cached : cached_width] = 1
        attention_mask[i, cached_width + fresh_width - len(fresh) :] = 1
        position_ids[i, fresh_width - len(fresh) :] = torch.arange(part.cached, len(part.ids))
    attention_mask = attention_mask.to(device)
    output = base.forward(
        [part.adapter_name for part in parts],
        input_ids=input_ids.to(device),
        attention_mask=attention_mask,
        position_ids=position_ids.to(device),
        past_key_values=_cache_from_entries(base, parts, cached_width),
        use_cache=True,
        logits_to_keep=1,
    )
    next_position = torch.tensor([len(part.ids) for part in parts], device=device)
    return Prefilled(
        output.past_key_values, attention_mask, next_position, output.logits[:, -1, :].float(), cached_width
    )


def row_entry(prefilled: Prefilled, row: int, part: PromptPart) -> PrefixEntry:
    """The prefix entry for all of `part`'s ids, copied out of row `row` of a prefill's cache."""
    columns = torch.tensor(prefilled.columns(part), device=prefilled.attention_mask.device)
    keys, values = [], []
    for layer in prefilled.cache.layers:
        _, layer_keys, layer_values = filled_layer(layer)
        keys.append(layer_keys[row : row + 1, :, columns])
        values.append(layer_values[row : row + 1, :, columns])
    return PrefixEntry(part.adapter_name, tuple(part.ids), tuple(keys), tuple(values))


def filled_layer(layer: object) -> tuple[CacheLayerMixin, torch.Tensor, torch.Tensor]:
    """A cache layer with its keys and values ([rows, heads, positions, dim]): every layer of the attention
    caches the runtime fills holds both."""
    assert isinstance(layer, CacheLayerMixin) and layer.keys is not None and layer.values is not None
    return layer, layer.keys, layer.values


def _cache_from_entries(base: LoadedBase, parts: list[PromptPart], width: int) -> DynamicCache:
    """A cache holding each part's cached prefix, left-padded to `width` columns."""
    config = base.model.config
    if width == 0:
        return DynamicCache(config=config)
    sample = next(part.entry for part in parts if part.entry is not None)
    layers = []
    for layer in range(len(sample.keys)):
        shape = (len(parts), sample.keys[layer].shape[1], width, sample.keys[layer].shape[3])
        keys = sample.keys[layer].new_zeros(shape)
        values = sample.values[layer].new_zeros(shape)
        for i, part in enumerate(parts):
            if part.entry is not None and part.cached:
                keys[i, :, width - part.cached :] = part.entry.keys[layer][0, :, : part.cached]
                values[i, :, width - part.cached :] = part.entry.values[layer][0, :, : part.cached]
        layers.append((keys, values))
    return DynamicCache(ddp_cache_data=layers, config=config)
