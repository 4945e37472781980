"""The decode loop for one padded batch on one base model; each row keeps its own params and adapter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from fslm.runtime.loaded import LoadedBase
from fslm.runtime.sampling import next_tokens, row_generator
from fslm.runtime.types import Generation, GenerationParams


@dataclass
class PreparedRow:
    prompt_text: str
    prompt_ids: list[int]
    adapter_name: str
    params: GenerationParams
    on_text: Callable[[str], None] | None = None
    completion_ids: list[int] = field(default_factory=list)
    streamed: str = ""
    finish_reason: str | None = None


def decode_batch(base: LoadedBase, rows: list[PreparedRow]) -> list[Generation]:
    """Generate every row to its end in one left-padded batch. The caller holds `base.lock`."""
    started = time.perf_counter()
    for row in rows:
        if row.params.max_new_tokens == 0:
            row.finish_reason = "length"
    live = [row for row in rows if row.finish_reason is None]
    if live:
        with torch.inference_mode():
            _run(base, live)
    seconds = time.perf_counter() - started
    return [_result(base, row, seconds) for row in rows]


def _run(base: LoadedBase, rows: list[PreparedRow]) -> None:
    width = max(len(row.prompt_ids) for row in rows)
    input_ids = torch.full((len(rows), width), base.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids)
        attention_mask[i, width - len(row.prompt_ids) :] = 1
    # Each row's real tokens get positions 0..n-1, exactly as if it ran alone.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    next_position = attention_mask.sum(-1)

    cache = DynamicCache(config=base.model.config)
    active = list(rows)
    generators = [row_generator(row.params) for row in active]
    while True:
        output = base.forward(
            [row.adapter_name for row in active],
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = output.logits[:, -1, :].float()
        chosen = next_tokens(logits, [row.params for row in active], generators)
        keep = [
            i
            for i, (row, token) in enumerate(zip(active, chosen, strict=True))
            if not _advance(base, row, token)
        ]
        if not keep:
            return
        if len(keep) < len(active):
            # Drop finished rows from the batch and the cache, so short rows stop costing the long ones.
            index = torch.tensor(keep)
            cache.batch_select_indices(index)
            attention_mask = attention_mask[index]
            next_position = next_position[index]
            active = [active[i] for i in keep]
            generators = [generators[i] for i in keep]
            chosen = [chosen[i] for i in keep]
        input_ids = torch.tensor(chosen, dtype=torch.long).unsqueeze(1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=1)
        position_ids = next_position.unsqueeze(1).clone()
        next_position = next_position + 1


def _advance(base: LoadedBase, row: PreparedRow, token: int) -> bool:
    """Append `token` to the row; return True when the row has finished."""
    row.completion_ids.append(token)
    text = _decode(base, row) if row.params.stop or row.on_text else ""
    if token in base.eos_ids:
        row.finish_reason = "eos"
    elif row.params.stop and _stop_index(text, row.params.stop) is not None:
        row.finish_reason = "stop"
    elif len(row.completion_ids) >= row.params.max_new_tokens:
        row.finish_reason = "length"
    if row.on_text:
        _stream(row, text)
    return row.finish_reason is not None


def _stream(row: PreparedRow, text: str) -> None:
    """Pass on the text that is new since the last call, holding back what may yet be cut or completed."""
    cut = _stop_index(text, row.params.stop)
    if cut is not None:
        text = text[:cut]
    elif row.finish_reason is None:
        # A stop string may be forming at the end, and a multi-byte character may be half decoded.
        hold = max((len(stop) - 1 for stop in row.params.stop), default=0)
        text = text[: len(text) - hold] if hold else text
        text = text.rstrip("\ufffd")
    if len(text) > len(row.streamed) and text.startswith(row.streamed):
        row.on_text(text[len(row.streamed) :])
        row.streamed = text


def _decode(base: LoadedBase, row: PreparedRow) -> str:
    ids = [t for t in row.completion_ids if t not in base.eos_ids]
    return base.tokenizer.decode(ids, skip_special_tokens=True)


def _stop_index(text: str, stops: tuple[str, ...]) -> int | None:
    found = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return min(found) if found else None


def _result(base: LoadedBase, row: PreparedRow, seconds: float) -> Generation:
    text = _decode(base, row)
    cut = _stop_index(text, row.params.stop)
    if cut is not None:
        text = text[:cut]
    return Generation(
        text=text.strip(),
        prompt_text=row.prompt_text,
        prompt_tokens=len(row.prompt_ids),
        completion_tokens=len(row.completion_ids),
        seconds=seconds,
        finish_reason=row.finish_reason or "length",
    )
