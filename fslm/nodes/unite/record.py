"""What a voting stage (UniTE, boost) records in its stage message (`ensemble`): plain, serialisable."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class EnsembleRecord(TypedDict):
    """How an ensemble stage's members voted: per member (in `members` order) the first token it alone would
    have produced and the prompt form it got; how many steps ran and on how many the members disagreed."""

    members: list[str]
    first_tokens: list[str]
    templates: list[str]
    steps: int
    disagreements: int
    weights: NotRequired[list[float]]  # a boost stage's: each member's α, normalised to sum 1
