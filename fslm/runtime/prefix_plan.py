"""Choosing, for each prompt of a batch, which leading tokens need not be computed again.

A prompt reuses the longest prefix the base's prefix cache holds for its adapter. Prompts of one batch with
the same adapter that share a longer prefix than the cache gives them (a few-shot prompt's examples) have it
computed once, here, and kept for later batches.
"""

from __future__ import annotations

from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefill import Prefilled, PromptPart, prefill, row_entry
from fslm.runtime.prefix_cache import MIN_SHARED_TOKENS, PrefixCache, PrefixEntry, common_length

# A prompt this many tokens longer than any prefix it could reuse is kept whole after its prefill, so that a
# similar prompt arriving later (one at a time, from concurrent runs) finds it.
KEEP_PROMPT_TOKENS = 64


def prefill_reusing(base: LoadedBase, parts: list[PromptPart], cache: PrefixCache | None) -> Prefilled:
    """Prefill `parts`, reusing and keeping prefixes in `cache` when given (each part's `cached` then says
    how many of its tokens came from it). The caller holds `base.lock` and inference mode."""
    if cache is not None:
        plan_prefixes(base, parts, cache)
    return prefill_planned(base, parts, cache)


def prefill_planned(base: LoadedBase, parts: list[PromptPart], cache: PrefixCache | None) -> Prefilled:
    """Prefill `parts` whose prefixes `plan_prefixes` has set (none without a cache), keeping whole prompts
    in `cache` when given. Parts planned together may be prefilled in several calls. The caller holds
    `base.lock` and inference mode."""
    prefilled = prefill(base, parts)
    if cache is not None:
        keep_prompts(prefilled, parts, cache)
    return prefilled


def plan_prefixes(base: LoadedBase, parts: list[PromptPart], cache: PrefixCache) -> None:
    """Set each part's `entry` and `cached`. The caller holds `base.lock` and inference mode."""
    for part in parts:
        part.entry, part.cached = cache.lookup(part.adapter_name, part.ids)
    for group in _shared_groups(parts):
        shared = min(common_length(group[0].ids, part.ids) for part in group)
        shared = min([shared] + [len(part.ids) - 1 for part in group])
        if all(part.cached >= shared for part in group):
            continue
        entry = compute_entry(base, group[0].adapter_name, group[0].ids[:shared], cache)
        for part in group:
            if part.cached < shared:
                part.entry, part.cached = entry, shared
    for part in parts:
        if part.entry is not None and len(part.entry.ids) > part.cached:
            part.entry = _shorter_entry(cache, part.entry, part.cached)


def compute_entry(base: LoadedBase, adapter_name: str, ids: list[int], cache: PrefixCache) -> PrefixEntry:
    """The prefix entry of `ids`, computed from the longest cached prefix of it, and kept in `cache`."""
    part = PromptPart(adapter_name, ids)
    part.entry, part.cached = cache.lookup(adapter_name, ids)
    entry = row_entry(prefill(base, [part]), 0, part)
    cache.add(entry)
    return entry


def keep_prompts(prefilled: Prefilled, parts: list[PromptPart], cache: PrefixCache) -> None:
    """Keep whole prompts that reused little, so later arrivals that share their start can reuse them."""
    for row, part in enumerate(parts):
        if len(part.fresh) >= KEEP_PROMPT_TOKENS:
            cache.add(row_entry(prefilled, row, part))


def _shared_groups(parts: list[PromptPart]) -> list[list[PromptPart]]:
    """Groups of two or more parts with one adapter that share at least MIN_SHARED_TOKENS leading ids. A part
    joins its lexicographic neighbour's group unless that would halve the group's shared prefix."""
    groups: list[list[PromptPart]] = []
    current: list[PromptPart] = []
    shared = 0
    for part in sorted(parts, key=lambda p: (p.adapter_name, p.ids)):
        if current and current[0].adapter_name == part.adapter_name:
            with_part = common_length(current[0].ids[:shared], part.ids)
            if with_part >= MIN_SHARED_TOKENS and 2 * with_part >= shared:
                current.append(part)
                shared = with_part
                continue
        if len(current) > 1:
            groups.append(current)
        current, shared = [part], len(part.ids)
    if len(current) > 1:
        groups.append(current)
    return groups


def _shorter_entry(cache: PrefixCache, entry: PrefixEntry, length: int) -> PrefixEntry:
    """The entry for `entry`'s first `length` ids, from the cache when it holds it, else cut and kept."""
    found = cache.get(entry.adapter_name, entry.ids[:length])
    if found is not None:
        return found
    shorter = entry.truncated(length)
    cache.add(shorter)
    return shorter
