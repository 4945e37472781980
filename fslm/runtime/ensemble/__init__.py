"""Ensembles of models with different tokenizers, decoding one text together (UniTE and other votes).

- `types`: the request and result dataclasses (free of torch).
- `alignment`: what each token stands for, as bytes, and each member's own tokens for the growing text.
- `members`: a member in memory, its token text (built once per base) and its side of a batch (KV cache).
- `vote`: what a vote sees (`Ballot`), the `Vote` contract, and UniTE's union top-k average.
- `decode`: the decoding loop, with the vote passed in.
- `serving`: what the runtime calls: groups requests by member set, loads members, decodes in batches.

Importing this package does not import torch; the names that need it load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fslm.lazy import lazy_attributes
from fslm.runtime.ensemble.alignment import EOS, Special, TokenKey, TokenText
from fslm.runtime.ensemble.types import EnsembleGeneration, EnsembleMember, EnsembleRequest

if TYPE_CHECKING:
    from fslm.runtime.ensemble.decode import decode_ensemble
    from fslm.runtime.ensemble.members import LoadedMember, MemberBatch, token_text_for
    from fslm.runtime.ensemble.serving import serve_ensemble
    from fslm.runtime.ensemble.vote import Ballot, Vote, union_average, unite_vote

_LAZY = {
    "decode_ensemble": "fslm.runtime.ensemble.decode",
    "LoadedMember": "fslm.runtime.ensemble.members",
    "MemberBatch": "fslm.runtime.ensemble.members",
    "token_text_for": "fslm.runtime.ensemble.members",
    "serve_ensemble": "fslm.runtime.ensemble.serving",
    "Ballot": "fslm.runtime.ensemble.vote",
    "Vote": "fslm.runtime.ensemble.vote",
    "union_average": "fslm.runtime.ensemble.vote",
    "unite_vote": "fslm.runtime.ensemble.vote",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "EOS",
    "Ballot",
    "EnsembleGeneration",
    "EnsembleMember",
    "EnsembleRequest",
    "LoadedMember",
    "MemberBatch",
    "Special",
    "TokenKey",
    "TokenText",
    "Vote",
    "decode_ensemble",
    "serve_ensemble",
    "token_text_for",
    "union_average",
    "unite_vote",
]
