"""Serving route requests for the runtime: grouped by checkpoint, each router loaded once, queries encoded
in batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from fslm.errors import FslmError
from fslm.runtime.router.model import RouterModel
from fslm.runtime.router.types import RouteRequest, RouteScores

_routers: dict[tuple[str, int], RouterModel] = {}  # by checkpoint and its weights' mtime: a retrain reloads
_lock = threading.Lock()


def serve_routes(
    base_for: Callable[[str], object], requests: Sequence[RouteRequest], max_batch_size: int
) -> list[RouteScores | BaseException]:
    """Serve requests now, those for one checkpoint in batches of at most `max_batch_size` queries. A
    checkpoint that cannot be loaded fails only its own requests. (`base_for` is unused: a router is not a
    base model.)"""
    outcomes: dict[int, RouteScores | BaseException] = {}
    by_checkpoint: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        by_checkpoint.setdefault(request.checkpoint, []).append(index)
    for checkpoint, indices in by_checkpoint.items():
        try:
            router = loaded_router(Path(checkpoint))
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


def loaded_router(checkpoint: Path) -> RouterModel:
    weights = checkpoint / "router.safetensors"
    key = (str(checkpoint), weights.stat().st_mtime_ns if weights.exists() else 0)
    with _lock:
        router = _routers.get(key)
        if router is None:
            router, _ = RouterModel.load(checkpoint)
            _routers[key] = router
        return router
