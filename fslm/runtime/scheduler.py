"""Iteration-level batching for one base model: requests join the running batch at the next step.

One worker thread runs the loop: take in what has arrived (within the row and token caps), prefill it and
join it to the running batch, decode one step for every row, hand back the rows that finished. A request
that arrives while a batch decodes waits one step, not the whole batch; a row that finishes leaves at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import torch

from fslm.runtime.active_batch import ActiveBatch
from fslm.runtime.decode import PreparedRow, begin, result
from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefix_cache import PrefixCache
from fslm.runtime.request_queue import Pending, RequestQueue
from fslm.runtime.types import Generation

_Waiting = Pending[PreparedRow, Generation]


def _reserved_tokens(item: _Waiting) -> int:
    """The most cache positions the row can take: its prompt and every token it may generate."""
    return len(item.request.prompt_ids) + item.request.params.max_new_tokens


@dataclass(frozen=True)
class Caps:
    rows: int  # rows decoding at once
    tokens: int  # cache positions reserved by the rows decoding at once (prompt + max_new_tokens each)
    quiet_seconds: float  # an idle scheduler groups requests arriving this close together into one prefill
    max_wait_seconds: float  # ... for at most this long


class DecodeScheduler:
    """Serves the generation requests of one base model (see the module docstring)."""

    def __init__(
        self,
        base: LoadedBase,
        prefixes: PrefixCache | None,
        caps: Caps,
        on_prefill: Callable[[list[PreparedRow]], None],
    ) -> None:
        self._base = base
        self._prefixes = prefixes
        self._caps = caps
        self._on_prefill = on_prefill  # told every group of rows prefilled together
        self._requests: RequestQueue[PreparedRow, Generation] = RequestQueue()
        self._requests.start(self._work, name=f"fslm-decode-{base.key.path.name}")

    def submit(self, row: PreparedRow) -> Future[Generation]:
        return self._requests.submit(row)

    def close(self) -> None:
        """Serve what is queued, then stop."""
        self._requests.close()

    def _work(self) -> None:
        waiting: deque[_Waiting] = deque()
        running: dict[int, _Waiting] = {}  # id(row) → its request, for the rows prefilled and not finished
        batch: ActiveBatch | None = None
        stopping = False
        while True:
            if batch is None and not waiting:
                if stopping:
                    return
                stopping = self._requests.gather(
                    waiting,
                    limit=self._caps.rows,
                    quiet_seconds=self._caps.quiet_seconds,
                    max_wait_seconds=self._caps.max_wait_seconds,
                )
                if not waiting:
                    return
            stopping = self._requests.take_arrived(waiting) or stopping
            admitted = self._admit(waiting, batch, running)
            try:
                batch, finished = self._iterate(batch, [item.request for item in admitted])
            except Exception as error:  # noqa: BLE001 - a bug must reach every caller in flight, not kill the worker
                for item in running.values():
                    item.future.set_exception(error)
                running.clear()
                batch = None
                continue
            for row in finished:
                running.pop(id(row)).future.set_result(result(self._base, row))

    def _iterate(
        self, batch: ActiveBatch | None, admitted: list[PreparedRow]
    ) -> tuple[ActiveBatch | None, list[PreparedRow]]:
        """Prefill `admitted` into the batch, then decode one step; returns the batch and finished rows."""
        finished = []
        with self._base.lock, torch.inference_mode():
            if admitted:
                live = begin(admitted)
                finished += [row for row in admitted if row.finish_reason is not None]
                if live:
                    joining, done = ActiveBatch.start(self._base, live, self._prefixes)
                    self._on_prefill(live)
                    finished += done
                    if batch is None:
                        batch = joining
                    elif len(joining):
                        batch.join(joining)
            if batch is not None and len(batch):
                finished += batch.step()
        return (batch if batch is not None and len(batch) else None), finished

    def _admit(
        self, waiting: deque[_Waiting], batch: ActiveBatch | None, running: dict[int, _Waiting]
    ) -> list[_Waiting]:
        """Take waiting requests, first come first served, while the caps allow; a base whose batches
        cannot be joined takes new requests only when idle. A request over the token cap alone still runs,
        alone."""
        if batch is not None and not self._base.joinable:
            return []
        rows = len(running)
        tokens = sum(_reserved_tokens(item) for item in running.values())
        admitted = []
        while waiting and rows < self._caps.rows:
            item = waiting[0]
            if rows and tokens + _reserved_tokens(item) > self._caps.tokens:
                break
            admitted.append(waiting.popleft())
            running[id(item.request)] = item
            rows += 1
            tokens += _reserved_tokens(item)
        return admitted
