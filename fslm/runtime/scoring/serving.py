"""Serving score requests for the runtime: grouped by base model, encoded, scored in batches, reusing each
base's computed prompt prefixes (`base.prefixes`, per adapter) as generation does."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from fslm.errors import FslmError
from fslm.runtime.loaded import BaseKey, LoadedBase
from fslm.runtime.scoring.encoding import EncodedRequest, encode_request
from fslm.runtime.scoring.forward import RowScores, ScoreRow, score_rows
from fslm.runtime.scoring.search import search_rows
from fslm.runtime.scoring.types import OptionScores, ScoreRequest

# lm-eval's fallback when neither the model config nor the tokenizer says how long a context may be.
DEFAULT_MAX_LENGTH = 2048

# A request's index in the batch, its row, its encoding, and whether it is searched best-first.
Item = tuple[int, ScoreRow, EncodedRequest, bool]


def serve_scores(
    base_for: Callable[[str], LoadedBase], requests: Sequence[ScoreRequest], max_batch_size: int
) -> list[OptionScores | BaseException]:
    """Serve requests now. Those on one base model run together, in batches of at most `max_batch_size`
    options (a request with more options runs alone). A request's own fault (an unknown handle, a bad adapter,
    an option too long for the model) fails only that request. Prompts reuse the prefixes their base keeps
    (none where the runtime does not reuse them)."""
    outcomes: dict[int, OptionScores | BaseException] = {}
    by_base: dict[BaseKey, tuple[LoadedBase, list[Item]]] = {}
    for index, request in enumerate(requests):
        try:
            base = base_for(request.model)
            with base.lock:
                encoded = encode_request(base.tokenizer, request, max_length(base))
                adapter_name = base.adapter_name(request.adapter)
            row = ScoreRow(adapter_name, encoded.context_ids, encoded.continuation_ids)
        except FslmError as error:
            outcomes[index] = error
            continue
        by_base.setdefault(base.key, (base, []))[1].append((index, row, encoded, request.best_first))
    for base, items in by_base.values():
        items.sort(key=_order(base))
        for chunk in _chunks(items, max_batch_size):
            started = time.perf_counter()
            with base.lock:
                scored = _score_chunk(base, chunk)
            seconds = time.perf_counter() - started
            for (index, row, encoded, _), result in zip(chunk, scored, strict=True):
                outcomes[index] = OptionScores(
                    logprobs=tuple(result.logprobs),
                    tokens=tuple(len(ids) for ids in row.continuation_ids),
                    prompt_text=encoded.context_text,
                    prompt_tokens=len(row.context_ids),
                    seconds=seconds,
                    cached_prompt_tokens=result.cached_prompt_tokens,
                    pruned=tuple(result.pruned),
                )
    return [outcomes[index] for index in range(len(requests))]


def _score_chunk(base: LoadedBase, chunk: list[Item]) -> list[RowScores]:
    """The chunk's rows scored in full, or searched best-first, each as its request asks, in chunk order."""
    results: dict[int, RowScores] = {}
    for best_first, score in ((False, score_rows), (True, search_rows)):
        positions = [position for position, item in enumerate(chunk) if item[3] == best_first]
        if positions:
            scored = score(base, [chunk[position][1] for position in positions], base.prefixes)
            results.update(zip(positions, scored, strict=True))
    return [results[position] for position in range(len(chunk))]


def max_length(base: LoadedBase) -> int:
    """The longest input the model reads, found as lm-eval's HFLM finds it."""
    config = base.model.config.get_text_config()
    for attribute in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attribute, None)
        if isinstance(value, int):
            return value
    value = getattr(base.tokenizer, "model_max_length", None)
    # Tokenizers that do not know say int(1e30).
    return value if isinstance(value, int) and value < 10**12 else DEFAULT_MAX_LENGTH


def _order(base: LoadedBase) -> Callable[[Item], tuple]:
    """How to order a base's requests into batches. With prefix reuse, by adapter and prompt ids, so that
    prompts sharing a few-shot prefix land in one batch and compute it once; without, by prompt length, so
    that a batch pads less."""
    if base.prefixes is not None:
        return lambda item: (item[1].adapter_name, item[1].context_ids)
    return lambda item: (len(item[1].context_ids),)


def _chunks(items: list[Item], max_options: int) -> list[list[Item]]:
    chunks: list[list[Item]] = []
    count = 0
    for item in items:
        # A searched request extends a few prefixes at a time, not all its options at once.
        options = 1 if item[3] else len(item[1].continuation_ids)
        if not chunks or count + options > max_options:
            chunks.append([])
            count = 0
        chunks[-1].append(item)
        count += options
    return chunks
