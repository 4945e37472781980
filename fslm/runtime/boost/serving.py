"""Serving boosted-ensemble requests for the runtime, grouped by member set.

Members that all run on one loaded base (adapters, or the base itself) share its tokenizer: they decode as a
full-vocabulary mixture in one batched forward pass (`mixture`). Otherwise the request goes to the UniTE
decoder with the α weights, whose union alignment lets members with different tokenizers vote: fslm has one
implementation of cross-tokenizer voting, and it is that one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fslm.errors import FslmError
from fslm.runtime.boost.mixture import decode_mixture
from fslm.runtime.boost.types import BoostRequest
from fslm.runtime.ensemble.serving import serve_ensemble
from fslm.runtime.ensemble.types import EnsembleGeneration, EnsembleMember
from fslm.runtime.loaded import LoadedBase


def serve_boost(
    base_for: Callable[[str], LoadedBase], requests: Sequence[BoostRequest], max_batch_size: int
) -> list[EnsembleGeneration | BaseException]:
    """Serve requests now; a fault of one member set (a member that cannot load) fails only its requests.

    `max_batch_size` counts requests; a mixture batch holds one row per member of each."""
    groups: dict[tuple[EnsembleMember, ...], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.members, []).append(index)
    outcomes: dict[int, EnsembleGeneration | BaseException] = {}
    for members, indices in groups.items():
        group = [requests[index] for index in indices]
        try:
            results = _serve_group(base_for, members, group, max_batch_size)
        except FslmError as error:
            results = [error] * len(group)
        outcomes.update(zip(indices, results, strict=True))
    return [outcomes[index] for index in range(len(requests))]


def _serve_group(
    base_for: Callable[[str], LoadedBase],
    members: tuple[EnsembleMember, ...],
    requests: list[BoostRequest],
    max_batch_size: int,
) -> list[EnsembleGeneration | BaseException]:
    bases = [_load(base_for, member) for member in members]
    if any(base is not bases[0] for base in bases):
        return serve_ensemble(base_for, [request.as_ensemble() for request in requests], max_batch_size)
    base = bases[0]
    results: list[EnsembleGeneration | BaseException] = []
    with base.lock:
        names = [_adapter_name(base, member) for member in members]
        for start in range(0, len(requests), max_batch_size):
            results += decode_mixture(base, names, requests[start : start + max_batch_size])
    return results


def _load(base_for: Callable[[str], LoadedBase], member: EnsembleMember) -> LoadedBase:
    try:
        return base_for(member.model)
    except FslmError as error:
        raise FslmError(f"Boost member {member.label!r} could not be loaded: {error}") from error


def _adapter_name(base: LoadedBase, member: EnsembleMember) -> str:
    try:
        return base.adapter_name(member.adapter)
    except FslmError as error:
        raise FslmError(f"Boost member {member.label!r} could not be loaded: {error}") from error
