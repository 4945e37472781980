"""Ensemble members in memory: each one's token text (built once per base) and its side of a batch, with its
own KV cache, so that text chosen by the vote is fed to every member in its own tokens."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from fslm.runtime.ensemble.alignment import Change, TokenText
from fslm.runtime.loaded import LoadedBase

_token_texts: weakref.WeakKeyDictionary[LoadedBase, TokenText] = weakref.WeakKeyDictionary()


def token_text_for(base: LoadedBase) -> TokenText:
    """The base's TokenText, built once (indexing Gemma's 262k vocabulary takes a moment)."""
    with base.lock:
        text = _token_texts.get(base)
        if text is None:
            text = TokenText(base.tokenizer, base.eos_ids, str(base.key.path))
            _token_texts[base] = text
        return text


@dataclass(frozen=True)
class LoadedMember:
    """One member ready to decode: its loaded base, the adapter it runs with, its token text, its label."""

    base: LoadedBase
    adapter_name: str
    text: TokenText
    label: str


class MemberBatch:
    """One member's side of the batch: its KV cache, attention mask and the cache column of each live token.

    Rows re-tokenize their tails by different amounts, so a shared cache cannot be cropped per row; retracted
    tokens are masked out instead (a masked key has exactly zero attention weight) and positions count only
    live tokens, so each row sees what a fresh encoding of its tokens would.
    """

    def __init__(self, member: LoadedMember, prompt_ids: list[list[int]]) -> None:
        self.member = member
        self.cache = DynamicCache(config=member.base.model.config)
        self.prompt_lengths = [len(ids) for ids in prompt_ids]
        width = max(self.prompt_lengths)
        self.mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        self.columns = [list(range(width - len(ids), width)) for ids in prompt_ids]
        input_ids = torch.full((len(prompt_ids), width), member.base.pad_id, dtype=torch.long)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            self.mask[row, width - len(ids) :] = 1
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.logits = self._forward(input_ids, positions)

    def _forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        base = self.member.base
        with base.lock:
            output = base.forward(
                [self.member.adapter_name] * input_ids.shape[0],
                input_ids=input_ids,
                attention_mask=self.mask,
                position_ids=positions,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return output.logits[:, -1, :].float()

    def feed(self, changes: list[Change | None]) -> None:
        """Apply each row's change: mask its retracted tokens, then run its new tokens (left-padded)."""
        for row, change in enumerate(changes):
            if change is None:
                continue
            live = len(self.columns[row]) - self.prompt_lengths[row]
            for _ in range(live - change.keep):
                self.mask[row, self.columns[row].pop()] = 0
        counts = [len(change.added) if change else 0 for change in changes]
        width = max(counts)
        if width == 0:
            return
        rows = len(changes)
        start = self.mask.shape[1]
        input_ids = torch.full((rows, width), self.member.base.pad_id, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        new_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, (change, count) in enumerate(zip(changes, counts, strict=True)):
            if not count or change is None:
                continue
            offset = width - count
            first_position = len(self.columns[row])
            input_ids[row, offset:] = torch.tensor(change.added)
            positions[row, offset:] = torch.arange(first_position, first_position + count)
            new_mask[row, offset:] = 1
            self.columns[row].extend(range(start + offset, start + width))
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        logits = self._forward(input_ids, positions)
        fed = torch.tensor([count > 0 for count in counts])
        # A row with nothing new (its text is waiting for the rest of a character) keeps its logits.
        self.logits = torch.where(fed.unsqueeze(1), logits, self.logits)

    def keep_rows(self, keep: list[int]) -> None:
        index = torch.tensor(keep)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.logits = self.logits[index]
        self.columns = [self.columns[row] for row in keep]
        self.prompt_lengths = [self.prompt_lengths[row] for row in keep]
