"""Router inference for the `router` node kind: a small encoder and a linear head give a distribution over
experts, for concurrent runs' queries in one batch.

- `types`: the request and result (free of torch).
- `encoder`: finding and loading the sentence encoder (all-MiniLM-L6-v2, or a directory).
- `model`: `RouterModel`, the encoder with its head, loaded from and saved to a router checkpoint.
- `checkpoint`: a router checkpoint's files (torch-free: the spec layer reads its description).
- `serving`: `RouteServer`, what a runtime calls: requests grouped by checkpoint and served in batches, the
  routers used last kept loaded.

Importing this package does not import torch; the names that need it load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fslm.lazy import lazy_attributes
from fslm.runtime.router.types import RouteRequest, RouteScores

if TYPE_CHECKING:
    from fslm.runtime.router.model import RouterModel
    from fslm.runtime.router.serving import RouteServer

_LAZY = {"RouterModel": "fslm.runtime.router.model", "RouteServer": "fslm.runtime.router.serving"}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ["RouteRequest", "RouteScores", "RouteServer", "RouterModel"]
