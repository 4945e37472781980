"""What a choices stage records in its stage message (`StageMessage["choices"]`): plain, serialisable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict


class ScorerRecord(TypedDict):
    """One model's view of the options (in option order)."""

    model: str  # the model handle, with `+adapter` when it runs with one
    logprobs: list[float]  # summed log P(continuation | prompt)
    tokens: list[int]  # the continuation's tokens, in this model's tokenizer
    scores: list[float]  # the logprobs normalised as the stage says
    chosen: int  # the option this model alone would pick


class AbstainedRecord(TypedDict):
    """A stage that abstained: the pick's probability fell below `below`, so it wrote `answer`."""

    below: float
    answer: str


class ChoicesRecord(TypedDict):
    """How a choices stage picked: its options, each scorer's numbers (one for a model stage, each member's
    for an ensemble), the probabilities it chose by, and the chosen index."""

    options: list[str]  # as scored: in input order, each once
    bytes: list[int]  # each option's UTF-8 length
    normalize: str  # "none" | "token" | "byte"
    probabilities: list[float]  # softmax of the scores over the options; an ensemble's, averaged by weight
    chosen: int
    scorers: list[ScorerRecord]
    # `search: best_first`: options the search cut off. Their logprobs are upper bounds, so their
    # probabilities are too, and the chosen option's probability is a lower bound.
    pruned: NotRequired[list[int]]
    labels: NotRequired[list[str]]  # a verbalizer's labels in option order; the stage writes the chosen one
    duplicates: NotRequired[list[str]]  # options the input listed more than once (scored once)
    weights: NotRequired[list[float]]  # a boost stage's: each scorer's α, normalised to sum 1
    abstained: NotRequired[AbstainedRecord]  # `abstain:` set and the pick too unlikely; `chosen` is the pick


def choices_record(message: Mapping[str, Any]) -> ChoicesRecord | None:
    """The record a stage message carries under `choices`; None in the message of a stage that writes text."""
    return message.get("choices")
