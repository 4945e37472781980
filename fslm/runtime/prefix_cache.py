"""Computed key/value states of prompt prefixes, kept per adapter of one base model, least recently used first
out, within a byte bound."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads the default bound without loading torch
    import torch

# Below this many shared tokens a prefix is not worth its bookkeeping: the chat template's own header (about
# 30 tokens for SmolLM2) is above it, so every templated prompt shares at least that.
MIN_SHARED_TOKENS = 16
DEFAULT_PREFIX_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class PrefixEntry:
    """The key and value states, per layer ([1, heads, tokens, head_dim]), of `ids` under one adapter."""

    adapter_name: str
    ids: tuple[int, ...]
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def truncated(self, length: int) -> PrefixEntry:
        """The entry for the first `length` ids. Causal attention makes a position's states depend only on
        the tokens up to it, so a prefix of an entry is an entry. Copied, so the longer one can be freed."""
        return PrefixEntry(
            self.adapter_name,
            self.ids[:length],
            tuple(k[:, :, :length].clone() for k in self.keys),
            tuple(v[:, :, :length].clone() for v in self.values),
        )


def common_length(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int]) -> int:
    """How many leading ids `a` and `b` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixCache:
    """An LRU of prefix entries for one base model. Not thread-safe: the base's lock guards it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, tuple[int, ...]], PrefixEntry] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, adapter_name: str, ids: list[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the most leading ids with `ids` (the shortest such entry on a tie) and how many
        it shares, at most all but the last id (whose logits the caller needs). (None, 0) below
        MIN_SHARED_TOKENS."""
        limit = len(ids) - 1
        best: PrefixEntry | None = None
        best_shared = 0
        for (adapter, _), entry in self._entries.items():
            if adapter != adapter_name or entry.ids[0] != ids[0]:
                continue
            shared = min(common_length(entry.ids, ids), limit)
            if shared > best_shared or (
                shared == best_shared and best is not None and len(entry.ids) < len(best.ids)
            ):
                best, best_shared = entry, shared
        if best is None or best_shared < MIN_SHARED_TOKENS:
            return None, 0
        self._entries.move_to_end((adapter_name, best.ids))
        return best, best_shared

    def get(self, adapter_name: str, ids: tuple[int, ...]) -> PrefixEntry | None:
        """The entry for exactly `ids`, if kept."""
        entry = self._entries.get((adapter_name, ids))
        if entry is not None:
            self._entries.move_to_end((adapter_name, ids))
        return entry

    def add(self, entry: PrefixEntry) -> None:
        """Keep `entry`, dropping the least recently used entries to stay within the bound. An entry larger
        than the whole bound is not kept."""
        key = (entry.adapter_name, entry.ids)
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        size = entry.nbytes
        if size > self.max_bytes:
            return
        while self._bytes + size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes
        self._entries[key] = entry
        self._bytes += size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
