"""A request queue: concurrent callers' requests are collected and served in one batch, one queue per
request type that names its serving function (ensemble, scoring, ...). Generation requests have their own
iteration-level scheduler (`fslm.runtime.scheduler`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from fslm.runtime.request_queue import Pending, RequestQueue

Request = TypeVar("Request")
Result = TypeVar("Result")

# Serves a batch; returns, per request, its result or the exception that request alone caused.
ServeFunction = Callable[[Sequence[Request]], list[Result | BaseException]]


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
        self._requests: RequestQueue[Request, Result] = RequestQueue()
        self._requests.start(self._work, name=f"fslm-batcher-{name}")

    def submit(self, request: Request) -> Future[Result]:
        return self._requests.submit(request)

    def close(self) -> None:
        self._requests.close()

    def _work(self) -> None:
        while True:
            batch: list[Pending[Request, Result]] = []
            stopping = self._requests.gather(
                batch,
                limit=self._max_batch_size,
                quiet_seconds=self._quiet_seconds,
                max_wait_seconds=self._max_wait_seconds,
            )
            if batch:
                self._run(batch)
            if stopping:
                return

    def _run(self, batch: list[Pending[Request, Result]]) -> None:
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
