"""Serving route requests for a runtime: grouped by checkpoint, queries encoded in batches, the routers used
last kept loaded."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from fslm.errors import FslmError
from fslm.runtime.router.checkpoint import WEIGHTS_FILE
from fslm.runtime.router.model import RouterModel
from fslm.runtime.router.types import RouteRequest, RouteScores

# Routers one runtime keeps loaded (all-MiniLM-L6-v2 and its head: about 90 MB each).
MAX_LOADED_ROUTERS = 4


class RouteServer:
    """A runtime's server of route requests (`RouteRequest.serve_with`). It keeps the `capacity` routers used
    last loaded, as vLLM's LoRA manager keeps adapters: loading one more frees the least recently used."""

    def __init__(self, capacity: int = MAX_LOADED_ROUTERS) -> None:
        if capacity < 1:
            raise ValueError("a route server keeps at least 1 router")
        self.capacity = capacity
        # checkpoint → (its weights' mtime, so that a retrain reloads; the router), least recently used first
        self._routers: OrderedDict[str, tuple[int, RouterModel]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(
        self, base_for: Callable[[str], object], requests: Sequence[RouteRequest], max_batch_size: int
    ) -> list[RouteScores | BaseException]:
        """Serve requests now, those for one checkpoint in batches of at most `max_batch_size` queries. A
        checkpoint that cannot be loaded fails only its own requests. (`base_for` is unused: a router is
        not a base model.)"""
        outcomes: dict[int, RouteScores | BaseException] = {}
        by_checkpoint: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_checkpoint.setdefault(request.checkpoint, []).append(index)
        for checkpoint, indices in by_checkpoint.items():
            try:
                router = self.router(Path(checkpoint))
            except FslmError as error:
                outcomes.update({index: error for index in indices})
                continue
            for start in range(0, len(indices), max_batch_size):
                chunk = indices[start : start + max_batch_size]
                started = time.perf_counter()
                with torch.inference_mode():
                    probabilities = router([requests[index].query for index in chunk]).softmax(dim=-1)
                seconds = time.perf_counter() - started
                for index, row in zip(chunk, probabilities.tolist(), strict=True):
                    outcomes[index] = RouteScores(tuple(row), seconds, len(chunk))
        return [outcomes[index] for index in range(len(requests))]

    def router(self, checkpoint: Path) -> RouterModel:
        """The router saved in `checkpoint`, loaded on first use and again when its weights change."""
        weights = checkpoint / WEIGHTS_FILE
        stamp = weights.stat().st_mtime_ns if weights.exists() else 0
        with self._lock:
            kept = self._routers.get(str(checkpoint))
            if kept is None or kept[0] != stamp:
                kept = (stamp, RouterModel.load(checkpoint)[0])
                self._routers[str(checkpoint)] = kept
            self._routers.move_to_end(str(checkpoint))
            while len(self._routers) > self.capacity:
                self._routers.popitem(last=False)
            return kept[1]

    def close(self) -> None:
        """Free every router (the runtime closes)."""
        with self._lock:
            self._routers.clear()
