"""What a generating stage records of its tokens' log-probabilities (`StageMessage["logprobs"]`): how sure the
model was of what it wrote, in plain numbers. A cascade of generating stages reads its confidence from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from fslm.spec.kind_hooks import Column, RecordTable


class TokenLogprobs(TypedDict):
    """The generated tokens' log-probabilities under the model's untempered distribution (end-of-sequence
    and stop-string tokens included): their mean, their minimum and how many there were."""

    mean: float
    min: float
    tokens: int


def token_logprobs(values: Sequence[float]) -> TokenLogprobs | None:
    """The record of `values`, None when there are none (a runtime that does not return them)."""
    if not values:
        return None
    return TokenLogprobs(mean=sum(values) / len(values), min=min(values), tokens=len(values))


def logprobs_table(record: TokenLogprobs) -> RecordTable:
    return RecordTable(
        (Column("mean log-prob", numeric=True), Column("min log-prob", numeric=True), Column("tokens", True)),
        ((f"{record['mean']:.4f}", f"{record['min']:.4f}", str(record["tokens"])),),
    )
