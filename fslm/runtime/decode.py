"""A row being generated: its prompt, adapter and params, the tokens chosen so far, and how it ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fslm.runtime.loaded import LoadedBase
from fslm.runtime.sampling import row_generator
from fslm.runtime.stops import cut_at_stop, stop_index
from fslm.runtime.types import Generation, GenerationParams


@dataclass
class PreparedRow:
    prompt_text: str
    prompt_ids: list[int]
    adapter_name: str
    params: GenerationParams
    on_text: Callable[[str], None] | None = None
    completion_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    streamed: str = ""
    finish_reason: str | None = None
    cached_tokens: int = 0  # leading prompt tokens whose states came from the prefix cache
    generator: torch.Generator | None = None
    started: float = 0.0
    finished: float = 0.0


def begin(rows: list[PreparedRow]) -> list[PreparedRow]:
    """Start the rows' clocks and generators; returns the rows that have tokens to generate (a row asking
    for none is finished already)."""
    now = time.perf_counter()
    for row in rows:
        row.started = row.finished = now
        row.generator = row_generator(row.params)
        if row.params.max_new_tokens == 0:
            row.finish_reason = "length"
    return [row for row in rows if row.finish_reason is None]


def advance(base: LoadedBase, row: PreparedRow, token: int, logprob: float) -> bool:
    """Append `token` (and its log-probability) to the row; return True when the row has finished."""
    row.completion_ids.append(token)
    row.token_logprobs.append(logprob)
    text = _decode(base, row) if row.params.stop or row.on_text else ""
    if token in base.eos_ids:
        row.finish_reason = "eos"
    elif row.params.stop and stop_index(text, row.params.stop) is not None:
        row.finish_reason = "stop"
    elif len(row.completion_ids) >= row.params.max_new_tokens:
        row.finish_reason = "length"
    if row.on_text:
        _stream(row, text, row.on_text)
    if row.finish_reason is not None:
        row.finished = time.perf_counter()
    return row.finish_reason is not None


def _stream(row: PreparedRow, text: str, on_text: Callable[[str], None]) -> None:
    """Pass on the text that is new since the last call, holding back what may yet be cut or completed."""
    cut = stop_index(text, row.params.stop)
    if cut is not None:
        text = text[:cut]
    elif row.finish_reason is None:
        # A stop string may be forming at the end, and a multi-byte character may be half decoded.
        hold = max((len(stop) - 1 for stop in row.params.stop), default=0)
        text = text[: len(text) - hold] if hold else text
        text = text.rstrip("\ufffd")
    if len(text) > len(row.streamed) and text.startswith(row.streamed):
        on_text(text[len(row.streamed) :])
        row.streamed = text


def _decode(base: LoadedBase, row: PreparedRow) -> str:
    ids = [t for t in row.completion_ids if t not in base.eos_ids]
    return base.tokenizer.decode(ids, skip_special_tokens=True)


def result(base: LoadedBase, row: PreparedRow) -> Generation:
    text = cut_at_stop(_decode(base, row), row.params.stop)
    return Generation(
        text=text.strip(),
        prompt_text=row.prompt_text,
        prompt_tokens=len(row.prompt_ids),
        completion_tokens=len(row.completion_ids),
        seconds=row.finished - row.started,
        finish_reason=row.finish_reason or "length",
        cached_prompt_tokens=row.cached_tokens,
        token_logprobs=tuple(row.token_logprobs),
    )
