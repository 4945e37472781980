"""`Runtime`: owns every model in memory and serves generation requests, batched per base model."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from fslm.errors import FslmError
from fslm.lazy import load_reference
from fslm.runtime.active_batch import decode_batch
from fslm.runtime.batcher import Batcher
from fslm.runtime.decode import PreparedRow
from fslm.runtime.device import resolve_device, resolve_dtype
from fslm.runtime.ensemble.types import EnsembleGeneration, EnsembleRequest
from fslm.runtime.loaded import BaseKey, LoadedBase
from fslm.runtime.prefix_cache import DEFAULT_PREFIX_CACHE_BYTES, PrefixCache
from fslm.runtime.prompt import encode_prompt
from fslm.runtime.resolve import resolve_model
from fslm.runtime.scheduler import Caps, DecodeScheduler
from fslm.runtime.types import Generation, GenerationRequest, ModelRef


@dataclass
class RuntimeStats:
    """Counters for tests and benches: base models loaded, and the size of every batch prefilled together
    (a `generate` batch, or a group of submitted requests joining the running batch)."""

    base_loads: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    prompt_tokens: int = 0  # over every prefilled generation row
    cached_prompt_tokens: int = 0  # of those, the ones reused from prefix states
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
    concurrent callers' requests for the same base model are decoded together: a request joins the batch
    decoding on its base at the next step (iteration-level batching), within `max_batch_size` rows and
    `max_batch_tokens` reserved cache positions (prompt + max_new_tokens per row).

    Prompts that share leading tokens with the same adapter (a few-shot prompt) compute them once: within a
    batch, and across batches through a least-recently-used cache of prefix states per base model, bounded
    by `prefix_cache_bytes`. `reuse_prefixes=False` turns both off.

    Requests other than `GenerationRequest` (an ensemble's, a new node kind's) name the function that serves
    a batch of them in their class attribute `serve_with` ("module:function", called as
    `serve(base_for, requests, max_batch_size)` and returning a result or an exception per request);
    `submit` and `serve` batch them by request type the same way. A `serve_with` that names a class is a
    server that keeps what it loads (a router's weights): each runtime makes its own, with no arguments, on
    the first request of the type, calls it as a serving function is called, and `close()`s it on closing.
    """

    def __init__(
        self,
        models: Mapping[str, ModelRef],
        *,
        max_batch_size: int = 32,
        cache_dir: Path | None = None,
        batch_quiet_seconds: float = 0.02,
        batch_max_wait_seconds: float = 0.2,
        max_batch_tokens: int = 65536,
        reuse_prefixes: bool = True,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if max_batch_tokens < 1 or prefix_cache_bytes < 0:
            raise ValueError("max_batch_tokens must be >= 1 and prefix_cache_bytes >= 0")
        self.models = dict(models)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.reuse_prefixes = reuse_prefixes
        self.prefix_cache_bytes = prefix_cache_bytes
        self.cache_dir = cache_dir
        self.stats = RuntimeStats()
        self._batch_quiet_seconds = batch_quiet_seconds
        self._batch_max_wait_seconds = batch_max_wait_seconds
        self._state_lock = threading.Lock()  # guards the dicts below and stats
        self._load_lock = threading.Lock()  # one resolution or load at a time: each can take seconds and GBs
        self._handle_bases: dict[str, LoadedBase] = {}
        self._bases: dict[BaseKey, LoadedBase] = {}
        self._schedulers: dict[BaseKey, DecodeScheduler] = {}
        self._request_batchers: dict[type, Batcher] = {}
        self._servers: dict[type, Callable[..., list[Any]]] = {}  # by request type, see `_server`
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
            device = resolve_device(ref.device)
            key = BaseKey(resolved.path, resolve_dtype(ref.dtype, device), str(device))
            with self._state_lock:
                base = self._bases.get(key)
            if base is None:
                base = LoadedBase.load(key)
                if self.reuse_prefixes and base.joinable:
                    base.prefixes = PrefixCache(self.prefix_cache_bytes)
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
        row = _prepared_row(base, request)
        prefixes = base.prefixes
        with self._state_lock:
            self._check_open()
            scheduler = self._schedulers.get(base.key)
            if scheduler is None:
                caps = Caps(
                    rows=self.max_batch_size,
                    tokens=self.max_batch_tokens,
                    quiet_seconds=self._batch_quiet_seconds,
                    max_wait_seconds=self._batch_max_wait_seconds,
                )
                scheduler = DecodeScheduler(base, prefixes, caps, self._count_batch)
                self._schedulers[base.key] = scheduler
        return scheduler.submit(row).result()

    def close(self) -> None:
        """Stop the batcher threads and drop the models. Requests already queued are served first."""
        with self._state_lock:
            self._closed = True
            workers: list[Batcher | DecodeScheduler] = list(self._schedulers.values())
            self._schedulers.clear()
            workers += self._request_batchers.values()
            self._request_batchers.clear()
        for worker in workers:
            worker.close()
        with self._state_lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            if hasattr(server, "close"):
                server.close()
        with self._state_lock:
            for base in self._bases.values():
                if base.prefixes is not None:
                    base.prefixes.clear()
            self._handle_bases.clear()
            self._bases.clear()

    def _ref(self, handle: str) -> ModelRef:
        ref = self.models.get(handle)
        if ref is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise FslmError(f"Unknown model handle {handle!r}. Known handles: {known}.")
        return ref

    def _count_batch(self, rows: list[PreparedRow]) -> None:
        with self._state_lock:
            self.stats.batch_sizes.append(len(rows))
            self.stats.prompt_tokens += sum(len(row.prompt_ids) for row in rows)
            self.stats.cached_prompt_tokens += sum(row.cached_tokens for row in rows)

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
        outcomes = self._server(request_type)(self.base_for, requests, self.max_batch_size)
        with self._state_lock:
            self.stats.request_batch_sizes.setdefault(request_type.__name__, []).append(len(requests))
        return outcomes

    def _server(self, request_type: type[Any]) -> Callable[..., list[Any]]:
        """What serves `request_type`: the function its `serve_with` names, or this runtime's own instance of
        the class it names."""
        with self._state_lock:
            server = self._servers.get(request_type)
            if server is None:
                served = load_reference(request_type.serve_with)
                server = served() if isinstance(served, type) else served
                self._servers[request_type] = server
        return server

    def _serve(
        self, base: LoadedBase, requests: Sequence[GenerationRequest]
    ) -> list[Generation | BaseException]:
        """Serve requests that all use `base`. A request's own fault (a bad adapter, an empty prompt) fails
        only that request; the others are still served."""
        outcomes: list[Generation | BaseException | None] = [None] * len(requests)
        prefixes = base.prefixes
        with base.lock:
            rows: list[tuple[int, PreparedRow]] = []
            for index, request in enumerate(requests):
                try:
                    rows.append((index, _prepared_row(base, request)))
                except FslmError as error:
                    outcomes[index] = error
            # Similar lengths together means less padding.
            rows.sort(key=lambda item: len(item[1].prompt_ids))
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start : start + self.max_batch_size]
                generations = decode_batch(base, [row for _, row in chunk], prefixes)
                self._count_batch([row for _, row in chunk])
                for (index, _), generation in zip(chunk, generations, strict=True):
                    outcomes[index] = generation
        return [outcome for outcome in outcomes if outcome is not None]


def _prepared_row(base: LoadedBase, request: GenerationRequest) -> PreparedRow:
    """The row for `request`; a request's own fault (a bad adapter, an empty prompt) raises FslmError."""
    text, ids = encode_prompt(base.tokenizer, request)
    return PreparedRow(text, ids, base.adapter_name(request.adapter), request.params, request.on_text)
