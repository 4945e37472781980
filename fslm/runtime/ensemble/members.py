"""Ensemble members in memory: each one's token text (built once per base) and its side of a batch, with its
own KV cache, so that text chosen by the vote is fed to every member in its own tokens."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from fslm.runtime.ensemble.alignment import Change, TokenText
from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefill import PromptPart
from fslm.runtime.prefix_plan import prefill_reusing

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

    The prompts are prefilled as the runtime prefills any generation, reusing the member's computed
    prefixes (`base.prefixes`, per base and adapter); `cached_tokens` says how many each row reused.

    Rows re-tokenize their tails by different amounts, so a shared cache cannot be cropped per row; retracted
    tokens are masked out instead (a masked key has exactly zero attention weight) and positions count only
    live tokens, so each row sees what a fresh encoding of its tokens would.
    """

    def __init__(self, member: LoadedMember, prompt_ids: list[list[int]]) -> None:
        self.member = member
        base = member.base
        parts = [PromptPart(member.adapter_name, ids) for ids in prompt_ids]
        with base.lock:
            prefilled = prefill_reusing(base, parts, base.prefixes)
        self.cache = prefilled.cache
        self.mask = prefilled.attention_mask
        self.columns = [prefilled.columns(part) for part in parts]
        self.prompt_lengths = [len(ids) for ids in prompt_ids]
        self.cached_tokens = [part.cached for part in parts]
        self.logits = prefilled.logits.cpu()

    def _forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        base = self.member.base
        with base.lock:
            output = base.forward(
                [self.member.adapter_name] * input_ids.shape[0],
                input_ids=input_ids.to(base.device),
                attention_mask=self.mask,
                position_ids=positions.to(base.device),
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        # The vote reads the logits row by row on the CPU.
        return output.logits[:, -1, :].float().cpu()

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
        new_mask = torch.zeros((rows, width), dtype=torch.long, device=self.mask.device)
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
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.logits = self.logits[index.cpu()]
        self.columns = [self.columns[row] for row in keep]
        self.prompt_lengths = [self.prompt_lengths[row] for row in keep]
        self.cached_tokens = [self.cached_tokens[row] for row in keep]
