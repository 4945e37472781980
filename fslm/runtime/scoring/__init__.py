"""Scoring continuations by log-likelihood, as lm-eval-harness does, batched over concurrent requests.

- `types`: the request and result dataclasses (free of torch).
- `encoding`: a request's context and continuations as token ids, exactly as lm-eval encodes the pair.
- `forward`: one batch of encoded requests on one base: each prompt computed once (reusing computed prefixes
  through the runtime's prefill), its options continued from its KV cache.
- `serving`: what the runtime calls: groups requests by base model and serves them in batches, with the
  base's prefix cache.

Importing this package does not import torch; the names that need it load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fslm.lazy import lazy_attributes
from fslm.runtime.scoring.types import OptionScores, ScoreRequest

if TYPE_CHECKING:
    from fslm.runtime.scoring.forward import score_batch
    from fslm.runtime.scoring.serving import serve_scores

_LAZY = {
    "score_batch": "fslm.runtime.scoring.forward",
    "serve_scores": "fslm.runtime.scoring.serving",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ["OptionScores", "ScoreRequest", "score_batch", "serve_scores"]
