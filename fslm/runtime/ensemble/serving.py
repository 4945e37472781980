"""Serving ensemble requests for the runtime: grouped by member set, members loaded, decoded in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fslm.errors import FslmError
from fslm.runtime.ensemble.decode import decode_ensemble
from fslm.runtime.ensemble.members import LoadedMember, token_text_for
from fslm.runtime.ensemble.types import EnsembleGeneration, EnsembleMember, EnsembleRequest
from fslm.runtime.ensemble.vote import Vote, unite_vote
from fslm.runtime.loaded import LoadedBase


def serve_ensemble(
    base_for: Callable[[str], LoadedBase],
    requests: Sequence[EnsembleRequest],
    max_batch_size: int,
    vote: Vote = unite_vote,
) -> list[EnsembleGeneration | BaseException]:
    """Serve requests now: those with the same members run together, in batches of at most `max_batch_size`.

    A fault of one member set (a member that cannot load, mismatched templates) fails only its own
    requests."""
    groups: dict[tuple[EnsembleMember, ...], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.members, []).append(index)
    outcomes: dict[int, EnsembleGeneration | BaseException] = {}
    for refs, indices in groups.items():
        try:
            members = [_load_member(base_for, ref) for ref in refs]
            for start in range(0, len(indices), max_batch_size):
                chunk = indices[start : start + max_batch_size]
                results = decode_ensemble(members, [requests[i] for i in chunk], vote=vote)
                for index, result in zip(chunk, results, strict=True):
                    outcomes[index] = result
        except FslmError as error:
            outcomes.update({index: error for index in indices if index not in outcomes})
    return [outcomes[index] for index in range(len(requests))]


def _load_member(base_for: Callable[[str], LoadedBase], ref: EnsembleMember) -> LoadedMember:
    try:
        base = base_for(ref.model)
        return LoadedMember(base, base.adapter_name(ref.adapter), token_text_for(base), ref.label)
    except FslmError as error:
        raise FslmError(f"Ensemble member {ref.label!r} could not be loaded: {error}") from error
