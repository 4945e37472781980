"""Request and result of router inference: plain frozen dataclasses, free of torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class RouteRequest:
    """The router in `checkpoint` reads `query` and says how likely each expert is to answer it best."""

    serve_with: ClassVar[str] = "fslm.runtime.router.serving:RouteServer"  # see `Runtime.submit`

    checkpoint: str  # a router checkpoint directory (absolute)
    query: str


@dataclass(frozen=True)
class RouteScores:
    probabilities: tuple[float, ...]  # per expert, in the checkpoint's expert order
    seconds: float  # wall time of the batch that served it
    batch_size: int  # queries in that batch
