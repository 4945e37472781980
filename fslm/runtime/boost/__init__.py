"""Boosted ensembles (EnsemW2S): members' next-token distributions mixed with their α weights, token by token.

- `types`: the request dataclass (free of torch); results are `EnsembleGeneration`s, as for UniTE.
- `mixture`: members that are adapters on one base: full-vocabulary mixture, all members of all rows in one
  batched forward pass with mixed peft adapters.
- `serving`: what the runtime calls: groups requests by member set; members on one base decode as a mixture,
  members with other tokenizers through the UniTE decoder's union alignment with the α weights.

Importing this package does not import torch; the names that need it load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fslm.lazy import lazy_attributes
from fslm.runtime.boost.types import BoostRequest

if TYPE_CHECKING:
    from fslm.runtime.boost.mixture import decode_mixture
    from fslm.runtime.boost.serving import serve_boost

_LAZY = {
    "decode_mixture": "fslm.runtime.boost.mixture",
    "serve_boost": "fslm.runtime.boost.serving",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ["BoostRequest", "decode_mixture", "serve_boost"]
