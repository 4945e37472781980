"""The worker lifecycle the request batcher and the decode scheduler share: callers on any thread submit a
request and get a future; one worker thread takes requests off the queue, grouping those that arrive close
together; closing serves what is already queued, then stops the thread."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, MutableSequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


@dataclass
class Pending(Generic[Request, Result]):
    request: Request
    future: Future[Result]


class RequestQueue(Generic[Request, Result]):
    """The queue and its worker thread. The owner starts the thread with its serving loop once the owner is
    fully built, and the loop reads the queue through `gather` and `take_arrived`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Pending[Request, Result] | None] = queue.Queue()  # None: closing
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, work: Callable[[], None], *, name: str) -> None:
        self._thread = threading.Thread(target=work, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> Future[Result]:
        future: Future[Result] = Future()
        with self._close_lock:
            if self._closed:
                raise RuntimeError("the runtime is closed")
            self._queue.put(Pending(request, future))
        return future

    def close(self) -> None:
        """Let the worker serve what is queued, then wait for it to stop."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def gather(
        self,
        into: MutableSequence[Pending[Request, Result]],
        *,
        limit: int,
        quiet_seconds: float,
        max_wait_seconds: float,
    ) -> bool:
        """Block for a request, then keep those arriving within `quiet_seconds` of the last (for at most
        `max_wait_seconds` in all, until `into` holds `limit`). Returns True once the queue is closing."""
        first = self._queue.get()
        if first is None:
            return True
        into.append(first)
        deadline = time.monotonic() + max_wait_seconds
        while len(into) < limit:
            timeout = min(quiet_seconds, deadline - time.monotonic())
            if timeout <= 0:
                return False
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return False
            if item is None:
                return True
            into.append(item)
        return False

    def take_arrived(self, into: MutableSequence[Pending[Request, Result]]) -> bool:
        """Add every request already queued, without waiting. Returns True once the queue is closing."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            into.append(item)
