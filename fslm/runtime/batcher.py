"""A request queue: concurrent callers' requests are collected and served in one batch, one queue per
request type that names its serving function (ensemble, scoring, ...). Generation requests have their own
iteration-level scheduler (`fslm.runtime.scheduler`)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

# Serves a batch; returns, per request, its result or the exception that request alone caused.
ServeFunction = Callable[[Sequence[Request]], list[Result | BaseException]]


@dataclass
class _Pending(Generic[Request, Result]):
    request: Request
    future: Future[Result]


class Batcher(Generic[Request, Result]):
    """One worker thread. It blocks for a first request, then keeps collecting while requests keep arriving
    (each within `quiet_seconds` of the last, at most `max_wait_seconds` in all, at most `max_batch_size`),
    and serves what it collected in one call. Requests that arrive while a batch runs form the next batch."""

    def __init__(
        self,
        serve: ServeFunction[Request, Result],
        *,
        name: str,
        max_batch_size: int,
        quiet_seconds: float = 0.02,
        max_wait_seconds: float = 0.2,
    ) -> None:
        self._serve = serve
        self._max_batch_size = max_batch_size
        self._quiet_seconds = quiet_seconds
        self._max_wait_seconds = max_wait_seconds
        self._queue: queue.Queue[_Pending[Request, Result] | None] = queue.Queue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=f"fslm-batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> Future[Result]:
        future: Future[Result] = Future()
        with self._close_lock:
            if self._closed:
                raise RuntimeError("the runtime is closed")
            self._queue.put(_Pending(request, future))
        return future

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._collect(first)
            self._run(batch)
            if stopping:
                return

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch = [first]
        deadline = time.monotonic() + self._max_wait_seconds
        while len(batch) < self._max_batch_size:
            timeout = min(self._quiet_seconds, deadline - time.monotonic())
            if timeout <= 0:
                break
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self, batch: list[_Pending]) -> None:
        try:
            outcomes = self._serve([pending.request for pending in batch])
        except Exception as error:  # noqa: BLE001 - a whole-batch failure (a bug) must reach every caller, not kill the worker
            for pending in batch:
                pending.future.set_exception(error)
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
