"""Finding the option of highest summed log-probability without scoring every option: a best-first search over
the options' token trie.

Log-probabilities are at most 0 and add along an option's tokens, so a prefix's sum bounds the sum of every
option that starts with it. The search keeps, per request, a frontier of scored prefixes and always extends
the best one by one forward pass of the prefix after the prompt's cached states; the first complete option to
come off the frontier scores at least as high as every other option, whose sums can only be lower than the
bounds left on the frontier. It is exact for `normalize: none` only: a per-token or per-byte average of a
prefix does not bound its extensions'.

What is left is the pick, the chosen option's exact sum, and for every other option the bound it was pruned
at (the sum of its longest prefix that was scored), which is at least its sum.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import torch

from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefill import PromptPart, prefill, row_entry
from fslm.runtime.prefix_cache import PrefixCache
from fslm.runtime.prefix_plan import plan_prefixes, prefill_planned
from fslm.runtime.scoring.forward import RowScores, ScoreRow

Prefix = tuple[int, ...]
_END, _EXTEND = 0, 1  # on equal sums a complete option comes off the frontier before a prefix is extended


@dataclass
class OptionSearch:
    """One request's search state: its options' token ids, every scored prefix's sum, and the frontier."""

    options: tuple[Prefix, ...]
    sums: dict[Prefix, float] = field(default_factory=dict)
    frontier: list[tuple[float, int, int, Prefix]] = field(default_factory=list)
    chosen: int | None = None

    def __post_init__(self) -> None:
        self.first_option: dict[Prefix, int] = {}  # per prefix, the first option under it (the tie rule)
        self.ends: dict[Prefix, int] = {}  # per complete option's ids, its first index
        self.next_tokens: dict[Prefix, list[int]] = {}
        for index, ids in enumerate(self.options):
            self.ends.setdefault(ids, index)
            for length in range(len(ids)):
                self.first_option.setdefault(ids[: length + 1], index)
                tokens = self.next_tokens.setdefault(ids[:length], [])
                if ids[length] not in tokens:
                    tokens.append(ids[length])

    def extend(self, prefix: Prefix, logprobs: torch.Tensor) -> None:
        """Score each child of `prefix` from the log-probabilities of the token after it."""
        base = self.sums.get(prefix, 0.0)
        for token in self.next_tokens[prefix]:
            child = (*prefix, token)
            total = base + float(logprobs[token])
            self.sums[child] = total
            order = self.first_option[child]
            if child in self.ends:
                heapq.heappush(self.frontier, (-total, _END, order, child))
            if child in self.next_tokens:
                heapq.heappush(self.frontier, (-total, _EXTEND, order, child))

    def next_prefix(self) -> Prefix | None:
        """The prefix to extend next, or None once the best complete option is found (`chosen`)."""
        if self.chosen is not None:
            return None
        _, kind, _, prefix = heapq.heappop(self.frontier)
        if kind == _END:
            self.chosen = self.ends[prefix]
            return None
        return prefix

    def results(self) -> tuple[list[float], list[int]]:
        """Per option its exact sum, or the bound it was pruned at; and the pruned options' indices."""
        values, pruned = [], []
        for index, ids in enumerate(self.options):
            scored = max(length for length in range(1, len(ids) + 1) if ids[:length] in self.sums)
            values.append(self.sums[ids[:scored]])
            if scored < len(ids):
                pruned.append(index)
        return values, pruned


def search_rows(base: LoadedBase, rows: list[ScoreRow], prefixes: PrefixCache | None) -> list[RowScores]:
    """Per row, the best option found by best-first search: exact sums for the options the search completed,
    bounds for the rest. The caller holds `base.lock`."""
    prompts = list(dict.fromkeys((row.adapter_name, row.context_ids) for row in rows))
    prompt_of = {prompt: index for index, prompt in enumerate(prompts)}
    parts = [PromptPart(adapter, list(ids)) for adapter, ids in prompts]
    with torch.inference_mode():
        if prefixes is not None:
            plan_prefixes(base, parts, prefixes)
        prefilled = prefill_planned(base, parts, prefixes)
        entries = [row_entry(prefilled, index, part) for index, part in enumerate(parts)]
        first = torch.log_softmax(prefilled.logits, dim=-1)
        searches = []
        for row in rows:
            search = OptionSearch(row.continuation_ids)
            search.extend((), first[prompt_of[(row.adapter_name, row.context_ids)]])
            searches.append(search)
        while True:
            extending = [
                (row, search, search.next_prefix()) for row, search in zip(rows, searches, strict=True)
            ]
            steps = [(row, search, prefix) for row, search, prefix in extending if prefix is not None]
            if not steps:
                break
            step_parts = []
            for row, _, prefix in steps:
                prompt = prompt_of[(row.adapter_name, row.context_ids)]
                context = parts[prompt].ids
                step_parts.append(
                    PromptPart(row.adapter_name, [*context, *prefix], entries[prompt], len(context))
                )
            logprobs = torch.log_softmax(prefill(base, step_parts).logits, dim=-1)
            for (_, search, prefix), row_logprobs in zip(steps, logprobs, strict=True):
                search.extend(prefix, row_logprobs)
    results = []
    for row, search in zip(rows, searches, strict=True):
        values, pruned = search.results()
        part = parts[prompt_of[(row.adapter_name, row.context_ids)]]
        results.append(RowScores(values, part.cached, pruned))
    return results
