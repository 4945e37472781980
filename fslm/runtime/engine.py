"""`Runtime`: owns every model in memory and serves generation requests, batched per base model."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from fslm.errors import FslmError
from fslm.lazy import load_reference
from fslm.runtime.batcher import Batcher
from fslm.runtime.decode import PreparedRow, decode_batch
from fslm.runtime.ensemble.types import EnsembleGeneration, EnsembleRequest
from fslm.runtime.loaded import BaseKey, LoadedBase
from fslm.runtime.prompt import encode_prompt
from fslm.runtime.resolve import resolve_model
from fslm.runtime.types import Generation, GenerationRequest, ModelRef


@dataclass
class RuntimeStats:
    """Counters for tests and benches: base models loaded, and the size of every padded batch served."""

    base_loads: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    # requests per served batch of every other request type (ensembles, …), by the request class's name
    request_batch_sizes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def batches(self) -> int:
        return len(self.batch_sizes)

    @property
    def ensemble_batch_sizes(self) -> list[int]:
        return self.request_batch_sizes.get(EnsembleRequest.__name__, [])


class Runtime:
    """Loads each base model once (lazily), attaches LoRA adapters to it by name, and generates.

    Safe to use from many threads: `generate` serves its requests at once; `submit` queues a request so that
    concurrent callers' requests for the same base model are served together in one batch.

    Requests other than `GenerationRequest` (an ensemble's, a new node kind's) name the function that serves
    a batch of them in their class attribute `serve_with` ("module:function", called as
    `serve(base_for, requests, max_batch_size)` and returning a result or an exception per request);
    `submit` and `serve` batch them by request type the same way.
    """

    def __init__(
        self,
        models: Mapping[str, ModelRef],
        *,
        max_batch_size: int = 32,
        cache_dir: Path | None = None,
        batch_quiet_seconds: float = 0.02,
        batch_max_wait_seconds: float = 0.2,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.models = dict(models)
        self.max_batch_size = max_batch_size
        self.cache_dir = cache_dir
        self.stats = RuntimeStats()
        self._batch_quiet_seconds = batch_quiet_seconds
        self._batch_max_wait_seconds = batch_max_wait_seconds
        self._state_lock = threading.Lock()  # guards the dicts below and stats
        self._load_lock = threading.Lock()  # one resolution or load at a time: each can take seconds and GBs
        self._handle_bases: dict[str, LoadedBase] = {}
        self._bases: dict[BaseKey, LoadedBase] = {}
        self._batchers: dict[BaseKey, Batcher[GenerationRequest, Generation]] = {}
        self._request_batchers: dict[type, Batcher] = {}
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def base_for(self, handle: str) -> LoadedBase:
        """The loaded base model behind `handle`, resolving and loading it on first use."""
        with self._state_lock:
            self._check_open()
            base = self._handle_bases.get(handle)
        if base is not None:
            return base
        ref = self._ref(handle)
        with self._load_lock:
            resolved = resolve_model(ref.source, ref.revision, cache_dir=self.cache_dir)
            key = BaseKey(resolved.path, ref.dtype)
            with self._state_lock:
                base = self._bases.get(key)
            if base is None:
                base = LoadedBase.load(key)
                with self._state_lock:
                    self.stats.base_loads += 1
                    self._bases[key] = base
            with self._state_lock:
                self._handle_bases[handle] = base
        return base

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Serve `requests` now, grouped by base model, in padded batches of at most `max_batch_size`."""
        by_base: dict[BaseKey, list[int]] = {}
        bases: dict[BaseKey, LoadedBase] = {}
        for index, request in enumerate(requests):
            base = self.base_for(request.model)
            bases[base.key] = base
            by_base.setdefault(base.key, []).append(index)
        results: list[Generation | None] = [None] * len(requests)
        for key, indices in by_base.items():
            outcomes = self._serve(bases[key], [requests[i] for i in indices])
            for index, outcome in zip(indices, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    raise outcome
                results[index] = outcome
        return [result for result in results if result is not None]

    def generate_ensemble(self, requests: Sequence[EnsembleRequest]) -> list[EnsembleGeneration]:
        """Serve UniTE ensemble requests now (see `fslm.runtime.ensemble`); each member's base loads once."""
        return self.serve(requests)

    def serve(self, requests: Sequence[Any]) -> list[Any]:
        """Serve requests of one `serve_with` type now, in one call of their serving function."""
        results = []
        for outcome in self._serve_requests(requests):
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    def submit(self, request: Any) -> Any:
        """Serve one request, batched with other threads' concurrent requests (for the same base, or of the
        same type); blocks."""
        if not isinstance(request, GenerationRequest):
            return self._request_batcher(type(request)).submit(request).result()
        base = self.base_for(request.model)
        with self._state_lock:
            self._check_open()
            batcher = self._batchers.get(base.key)
            if batcher is None:
                batcher = Batcher(
                    lambda batch: self._serve(base, batch),
                    name=base.key.path.name,
                    max_batch_size=self.max_batch_size,
                    quiet_seconds=self._batch_quiet_seconds,
                    max_wait_seconds=self._batch_max_wait_seconds,
                )
                self._batchers[base.key] = batcher
        return batcher.submit(request).result()

    def close(self) -> None:
        """Stop the batcher threads and drop the models. Requests already queued are served first."""
        with self._state_lock:
            self._closed = True
            batchers: list[Batcher] = list(self._batchers.values())
            self._batchers.clear()
            batchers += self._request_batchers.values()
            self._request_batchers.clear()
        for batcher in batchers:
            batcher.close()
        with self._state_lock:
            self._handle_bases.clear()
            self._bases.clear()

    def _ref(self, handle: str) -> ModelRef:
        ref = self.models.get(handle)
        if ref is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise FslmError(f"Unknown model handle {handle!r}. Known handles: {known}.")
        return ref

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the runtime is closed")

    def _request_batcher(self, request_type: type) -> Batcher:
        with self._state_lock:
            self._check_open()
            batcher = self._request_batchers.get(request_type)
            if batcher is None:
                batcher = Batcher(
                    self._serve_requests,
                    name=request_type.__name__,
                    max_batch_size=self.max_batch_size,
                    quiet_seconds=self._batch_quiet_seconds,
                    max_wait_seconds=self._batch_max_wait_seconds,
                )
                self._request_batchers[request_type] = batcher
        return batcher

    def _serve_requests(self, requests: Sequence[Any]) -> list[Any]:
        (request_type,) = {type(request) for request in requests}
        serve = load_reference(request_type.serve_with)
        outcomes = serve(self.base_for, requests, self.max_batch_size)
        with self._state_lock:
            self.stats.request_batch_sizes.setdefault(request_type.__name__, []).append(len(requests))
        return outcomes

    def _serve(
        self, base: LoadedBase, requests: Sequence[GenerationRequest]
    ) -> list[Generation | BaseException]:
        """Serve requests that all use `base`. A request's own fault (a bad adapter, an empty prompt) fails
        only that request; the others are still served."""
        outcomes: list[Generation | BaseException | None] = [None] * len(requests)
        with base.lock:
            rows: list[tuple[int, PreparedRow]] = []
            for index, request in enumerate(requests):
                try:
                    text, ids = encode_prompt(base.tokenizer, request)
                    adapter_name = base.adapter_name(request.adapter)
                except FslmError as error:
                    outcomes[index] = error
                    continue
                rows.append((index, PreparedRow(text, ids, adapter_name, request.params, request.on_text)))
            # Similar lengths together means less padding.
            rows.sort(key=lambda item: len(item[1].prompt_ids))
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start : start + self.max_batch_size]
                generations = decode_batch(base, [row for _, row in chunk])
                with self._state_lock:
                    self.stats.batch_sizes.append(len(chunk))
                for (index, _), generation in zip(chunk, generations, strict=True):
                    outcomes[index] = generation
        return [outcome for outcome in outcomes if outcome is not None]
