"""Rows decoding together on one base model: one left-padded cache, one step at a time.

Rows leave the batch the moment they finish, and a newly prefilled batch can join a running one between
steps (iteration-level batching): the narrower cache is left-padded to the wider one's width, which the
attention mask hides, so every row computes what it computes alone.
"""

from __future__ import annotations

import torch
from torch.nn import functional
from transformers import DynamicCache

from fslm.runtime.decode import PreparedRow, advance, begin, result
from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefill import PromptPart, filled_layer
from fslm.runtime.prefix_cache import PrefixCache
from fslm.runtime.prefix_plan import prefill_reusing
from fslm.runtime.sampling import chosen_logprobs, next_tokens
from fslm.runtime.types import Generation


class ActiveBatch:
    """The rows being decoded, their cache, attention mask and next positions, and the token each row feeds
    at the next step. Every method is called with `base.lock` held and in inference mode."""

    def __init__(
        self,
        base: LoadedBase,
        rows: list[PreparedRow],
        cache: DynamicCache,
        attention_mask: torch.Tensor,
        next_position: torch.Tensor,
    ) -> None:
        self.base = base
        self.rows = rows
        self.cache = cache
        self.attention_mask = attention_mask
        self.next_position = next_position
        self.pending = torch.zeros(0, dtype=torch.long, device=base.device)

    @classmethod
    def start(
        cls, base: LoadedBase, rows: list[PreparedRow], prefixes: PrefixCache | None
    ) -> tuple[ActiveBatch, list[PreparedRow]]:
        """Prefill `rows` (reusing cached prefixes when `prefixes` is given) and choose their first tokens.
        Returns the batch of rows still going and the rows already finished."""
        parts = [PromptPart(row.adapter_name, row.prompt_ids) for row in rows]
        prefilled = prefill_reusing(base, parts, prefixes)
        for row, part in zip(rows, parts, strict=True):
            row.cached_tokens = part.cached
        batch = cls(base, rows, prefilled.cache, prefilled.attention_mask, prefilled.next_position)
        return batch, batch._choose(prefilled.logits)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        return self.attention_mask.shape[1]

    def step(self) -> list[PreparedRow]:
        """Feed every row its pending token and choose its next one; returns the rows that finished."""
        attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones((len(self), 1))], dim=1)
        output = self.base.forward(
            [row.adapter_name for row in self.rows],
            input_ids=self.pending.unsqueeze(1),
            attention_mask=attention_mask,
            position_ids=self.next_position.unsqueeze(1),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.attention_mask = attention_mask
        self.next_position = self.next_position + 1
        return self._choose(output.logits[:, -1, :].float())

    def join(self, other: ActiveBatch) -> None:
        """Take `other`'s rows into this batch, from the next step on."""
        width = max(self.width, other.width)
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            (layer, keys, values), (_, their_keys, their_values) = filled_layer(mine), filled_layer(theirs)
            layer.keys = torch.cat([_left_pad(keys, width), _left_pad(their_keys, width)])
            layer.values = torch.cat([_left_pad(values, width), _left_pad(their_values, width)])
        self.attention_mask = torch.cat(
            [_left_pad(self.attention_mask, width), _left_pad(other.attention_mask, width)]
        )
        self.next_position = torch.cat([self.next_position, other.next_position])
        self.pending = torch.cat([self.pending, other.pending])
        self.rows = self.rows + other.rows

    def _choose(self, logits: torch.Tensor) -> list[PreparedRow]:
        # Sampling draws from each row's own CPU generator, so the same seed samples the same on any device.
        logits = logits.cpu()
        chosen = next_tokens(logits, [row.params for row in self.rows], [row.generator for row in self.rows])
        logprobs = chosen_logprobs(logits, chosen)
        done = [
            advance(self.base, row, token, logprob)
            for row, token, logprob in zip(self.rows, chosen, logprobs, strict=True)
        ]
        finished = [row for row, row_done in zip(self.rows, done, strict=True) if row_done]
        self.pending = torch.tensor(chosen, dtype=torch.long, device=self.base.device)
        if finished:
            self._select([i for i, row_done in enumerate(done) if not row_done])
        return finished

    def _select(self, keep: list[int]) -> None:
        """Drop every row not in `keep` (finished rows stop costing the others at once)."""
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            return
        index = torch.tensor(keep, device=self.base.device)
        self.cache.batch_select_indices(index)
        self.attention_mask = self.attention_mask[index]
        self.next_position = self.next_position[index]
        self.pending = self.pending[index]
        if self.base.joinable:
            self._trim()

    def _trim(self) -> None:
        """Cut the leading columns that are padding in every remaining row."""
        lead = int(self.attention_mask.argmax(dim=1).min())
        if lead == 0:
            return
        self.attention_mask = self.attention_mask[:, lead:]
        for each in self.cache.layers:
            layer, keys, values = filled_layer(each)
            layer.keys, layer.values = keys[:, :, lead:], values[:, :, lead:]


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad `tensor`'s sequence dimension (the last of a mask, the third of a [rows, heads, seq, dim]
    cache tensor) on the left to `width`."""
    missing = width - (tensor.shape[1] if tensor.dim() == 2 else tensor.shape[2])
    if missing == 0:
        return tensor
    if tensor.dim() == 2:
        return functional.pad(tensor, (missing, 0))
    return functional.pad(tensor, (0, 0, missing, 0))


def decode_batch(base: LoadedBase, rows: list[PreparedRow], prefixes: PrefixCache | None) -> list[Generation]:
    """Generate every row to its end in one batch (reusing cached prefixes when `prefixes` is given). The
    caller holds `base.lock`."""
    live = begin(rows)
    if live:
        with torch.inference_mode():
            batch, _ = ActiveBatch.start(base, live, prefixes)
            while len(batch):
                batch.step()
    return [result(base, row) for row in rows]
