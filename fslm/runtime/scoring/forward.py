"""Scoring one batch of encoded requests on one base model.

Each distinct prompt (context ids and adapter) is computed once: the prompts run left-padded in one forward
pass that fills a KV cache and keeps only the last position's logits (they score every option's first
token). The cache is then repeated once per option, and all options of all requests continue from it in one
more right-padded forward pass, whose logits cover only the options' tokens. A prompt never goes through the
LM head, which matters for long few-shot prompts and large vocabularies (Gemma's is 262k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from fslm.runtime.loaded import LoadedBase


@dataclass(frozen=True)
class ScoreRow:
    """One request, encoded: the adapter it runs with, its context and its continuations' token ids."""

    adapter_name: str
    context_ids: tuple[int, ...]
    continuation_ids: tuple[tuple[int, ...], ...]


def score_batch(base: LoadedBase, rows: list[ScoreRow]) -> list[list[float]]:
    """Per row, per continuation: the summed log-probability of its tokens after the context. The caller holds
    `base.lock`."""
    prompts = list(dict.fromkeys((row.adapter_name, row.context_ids) for row in rows))
    prompt_of = {prompt: index for index, prompt in enumerate(prompts)}
    options = [
        (prompt_of[(row.adapter_name, row.context_ids)], row.adapter_name, ids)
        for row in rows
        for ids in row.continuation_ids
    ]
    with torch.inference_mode():
        cache, mask, first = _prefill(base, prompts)
        scores = [first[prompt, ids[0]].item() for prompt, _, ids in options]
        width = max(len(ids) for _, _, ids in options) - 1
        if width > 0:
            rest = _continue(base, cache, mask, [len(ids) for _, ids in prompts], options, width)
            scores = [score + extra for score, extra in zip(scores, rest, strict=True)]
    per_row: list[list[float]] = []
    for row in rows:
        per_row.append(scores[: len(row.continuation_ids)])
        scores = scores[len(row.continuation_ids) :]
    return per_row


def _prefill(
    base: LoadedBase, prompts: list[tuple[str, tuple[int, ...]]]
) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """The prompts' KV cache and attention mask (left-padded), and each prompt's next-token log-probs."""
    width = max(len(ids) for _, ids in prompts)
    input_ids = torch.full((len(prompts), width), base.pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, (_, ids) in enumerate(prompts):
        input_ids[i, width - len(ids) :] = torch.tensor(ids)
        mask[i, width - len(ids) :] = 1
    cache = DynamicCache(config=base.model.config)
    output = base.forward(
        [adapter for adapter, _ in prompts],
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return cache, mask, torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)


def _continue(
    base: LoadedBase,
    cache: DynamicCache,
    prompt_mask: torch.Tensor,
    prompt_lengths: list[int],
    options: list[tuple[int, str, tuple[int, ...]]],
    width: int,
) -> list[float]:
    """Per option, the log-probs of its tokens after the first, read from one forward pass that feeds every
    option but its last token (right-padded to `width`) after its prompt's cached keys and values."""
    index = torch.tensor([prompt for prompt, _, _ in options])
    cache.batch_select_indices(index)
    input_ids = torch.full((len(options), width), base.pad_id, dtype=torch.long)
    block_mask = torch.zeros((len(options), width), dtype=torch.long)
    for i, (_, _, ids) in enumerate(options):
        input_ids[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        block_mask[i, : len(ids) - 1] = 1
    starts = torch.tensor([prompt_lengths[prompt] for prompt, _, _ in options])
    output = base.forward(
        [adapter for _, adapter, _ in options],
        input_ids=input_ids,
        attention_mask=torch.cat([prompt_mask[index], block_mask], dim=1),
        position_ids=starts.unsqueeze(1) + torch.arange(width),
        past_key_values=cache,
        use_cache=True,
    )
    scores = []
    for i, (_, _, ids) in enumerate(options):
        logits = output.logits[i, : len(ids) - 1].float()
        targets = torch.tensor(ids[1:]).unsqueeze(1)
        scores.append((logits.gather(1, targets).squeeze(1) - torch.logsumexp(logits, dim=-1)).sum().item())
    return scores
