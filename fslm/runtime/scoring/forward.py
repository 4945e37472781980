"""Scoring one batch of encoded requests on one base model.

Each distinct prompt (context ids and adapter) is computed once, by the runtime's prefill (`prefix_plan`):
with a prefix cache, the leading tokens it shares with a cached prefix, or with other prompts of the batch
(a few-shot prompt's examples), are not computed again, exactly as for generation. Prompts are prefilled in
passes of similar uncached length, so that one prompt computed whole does not pad the others to its length.
A prefill keeps only the last position's logits (they score every option's first token). Its KV cache is
then repeated once per option, and the options of its prompts continue from it in right-padded forward
passes over options of similar length (longest first, a bounded number of logits each), whose logits cover
only the options' tokens. A prompt never goes through the LM head, which matters for long few-shot prompts
and large vocabularies (Gemma's is 262k).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefill import Prefilled, PromptPart
from fslm.runtime.prefix_cache import PrefixCache
from fslm.runtime.prefix_plan import plan_prefixes, prefill_planned

# Tokens of padding per row below which prompts share a prefill pass however their lengths compare.
PASS_SLACK = 32
# Tokens of padding per option that any pass over options allows, however its width compares.
OPTION_SLACK = 8
# Logits (positions x vocabulary) one pass over options may produce: 64M float32 values, 256 MB.
PASS_LOGITS = 64 * 2**20


@dataclass(frozen=True)
class ScoreRow:
    """One request, encoded: the adapter it runs with, its context and its continuations' token ids."""

    adapter_name: str
    context_ids: tuple[int, ...]
    continuation_ids: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class RowScores:
    """One row's result: per continuation its summed log-probability, and how many of the context's tokens
    came from the prefix cache. A best-first search (`search.py`) leaves some continuations `pruned`: their
    `logprobs` are upper bounds."""

    logprobs: list[float]
    cached_prompt_tokens: int
    pruned: list[int] = field(default_factory=list)


def score_batch(base: LoadedBase, rows: list[ScoreRow]) -> list[list[float]]:
    """Per row, per continuation: the summed log-probability of its tokens after the context, with no prefix
    cache (each prompt of the batch is still computed once). The caller holds `base.lock`."""
    return [scored.logprobs for scored in score_rows(base, rows, None)]


def score_rows(base: LoadedBase, rows: list[ScoreRow], prefixes: PrefixCache | None) -> list[RowScores]:
    """Per row, its continuations' summed log-probabilities after the context, reusing and keeping prompt
    prefixes in `prefixes` when given. The caller holds `base.lock`."""
    prompts = list(dict.fromkeys((row.adapter_name, row.context_ids) for row in rows))
    prompt_of = {prompt: index for index, prompt in enumerate(prompts)}
    parts = [PromptPart(adapter, list(ids)) for adapter, ids in prompts]
    options = [
        (prompt_of[(row.adapter_name, row.context_ids)], row.adapter_name, ids)
        for row in rows
        for ids in row.continuation_ids
    ]
    scores = [0.0] * len(options)
    with torch.inference_mode():
        if prefixes is not None:
            plan_prefixes(base, parts, prefixes)
        for group in _similar_lengths(parts):
            prefilled = prefill_planned(base, [parts[prompt] for prompt in group], prefixes)
            row_of = {prompt: row for row, prompt in enumerate(group)}
            chosen = [index for index, (prompt, _, _) in enumerate(options) if prompt in row_of]
            scored = _option_scores(
                base,
                prefilled,
                [len(parts[prompt].ids) for prompt in group],
                [(row_of[prompt], adapter, ids) for prompt, adapter, ids in (options[i] for i in chosen)],
            )
            for index, score in zip(chosen, scored, strict=True):
                scores[index] = score
    results: list[RowScores] = []
    for row in rows:
        part = parts[prompt_of[(row.adapter_name, row.context_ids)]]
        results.append(RowScores(scores[: len(row.continuation_ids)], part.cached))
        scores = scores[len(row.continuation_ids) :]
    return results


def _similar_lengths(parts: list[PromptPart]) -> list[list[int]]:
    """The indices of `parts`, in prefill passes of similar uncached length. One pass pads every row to its
    longest: a prompt computed whole beside prompts that reuse a long prefix would make them all as long. A
    part joins the pass of the shortest ones unless it is more than twice as long as they are and at least
    PASS_SLACK tokens longer (a separate pass over the model's layers costs more than a little padding)."""
    passes: list[list[int]] = []
    shortest = 0
    for index in sorted(range(len(parts)), key=lambda index: len(parts[index].fresh)):
        length = len(parts[index].fresh)
        if passes and length <= max(2 * shortest, shortest + PASS_SLACK):
            passes[-1].append(index)
        else:
            passes.append([index])
            shortest = length
    return passes


def _option_scores(
    base: LoadedBase,
    prefilled: Prefilled,
    prompt_lengths: list[int],
    options: list[tuple[int, str, tuple[int, ...]]],
) -> list[float]:
    """Per option (its prompt's row in `prefilled`, its adapter, its ids), its summed log-probability: the
    first token's from the prompt's last logits, the rest from passes over the options sorted by length."""
    first = torch.log_softmax(prefilled.logits, dim=-1)
    scores = [first[prompt, ids[0]].item() for prompt, _, ids in options]
    longer = [index for index, (_, _, ids) in enumerate(options) if len(ids) > 1]
    vocab = int(prefilled.logits.shape[-1])
    for group in _option_passes(longer, [len(options[index][2]) - 1 for index in longer], vocab):
        rest = _continue(base, prefilled, prompt_lengths, [options[index] for index in group])
        for index, extra in zip(group, rest, strict=True):
            scores[index] += extra
    return scores


def _option_passes(indices: list[int], lengths: list[int], vocab: int) -> list[list[int]]:
    """`indices` (with their options' `lengths` in tokens to feed) in forward passes of similar length,
    longest first. A pass pads every option to its longest, so an option joins a pass only if that pads it
    by at most a quarter of the pass's width (or OPTION_SLACK tokens), and while the pass stays within
    PASS_LOGITS logits (one row of `vocab` per position: the largest tensor a pass makes)."""
    budget = max(1, PASS_LOGITS // vocab)
    passes: list[list[int]] = []
    width = 0
    for position in sorted(range(len(indices)), key=lambda position: -lengths[position]):
        padding = width - lengths[position]
        if not passes or (len(passes[-1]) + 1) * width > budget or padding > max(width // 4, OPTION_SLACK):
            passes.append([])
            width = lengths[position]
        passes[-1].append(indices[position])
    return passes


def _continue(
    base: LoadedBase,
    prefilled: Prefilled,
    prompt_lengths: list[int],
    options: list[tuple[int, str, tuple[int, ...]]],
) -> list[float]:
    """Per option, the log-probs of its tokens after the first, read from one forward pass that feeds every
    option but its last token (right-padded to the longest) after its prompt's cached keys and values."""
    device = prefilled.attention_mask.device
    width = max(len(ids) for _, _, ids in options) - 1
    index = torch.tensor([prompt for prompt, _, _ in options], device=device)
    input_ids = torch.full((len(options), width), base.pad_id, dtype=torch.long)
    targets = torch.zeros((len(options), width), dtype=torch.long)
    block_mask = torch.zeros((len(options), width), dtype=torch.long)
    for i, (_, _, ids) in enumerate(options):
        input_ids[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[i, : len(ids) - 1] = torch.tensor(ids[1:])
        block_mask[i, : len(ids) - 1] = 1
    starts = torch.tensor([prompt_lengths[prompt] for prompt, _, _ in options])
    output = base.forward(
        [adapter for _, adapter, _ in options],
        input_ids=input_ids.to(device),
        attention_mask=torch.cat([prefilled.attention_mask[index], block_mask.to(device)], dim=1),
        position_ids=(starts.unsqueeze(1) + torch.arange(width)).to(device),
        past_key_values=_rows_of(prefilled.cache, index),
        use_cache=True,
    )
    logits = output.logits.float()
    chosen = logits.gather(2, targets.to(device).unsqueeze(2)).squeeze(2) - torch.logsumexp(logits, dim=-1)
    return torch.where(block_mask.to(device).bool(), chosen, 0.0).sum(dim=1).tolist()


def _rows_of(cache: DynamicCache, index: torch.Tensor) -> DynamicCache:
    """A cache of `cache`'s rows `index` (repeated where an index repeats), leaving `cache` as it is: the
    passes over one prefill's options each take their own rows."""
    rows = copy.copy(cache)
    rows.layers = [copy.copy(layer) for layer in cache.layers]
    rows.batch_select_indices(index)
    return rows
