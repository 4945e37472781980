"""What a trained model does on the examples: each example's option probabilities (a choices stage) and
whether each gold answer token is the model's argmax, read from teacher-forced forward passes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fslm.finetune.batching import collate
from fslm.finetune.boost.task import BoostExample
from fslm.finetune.encode import Encoded
from fslm.finetune.model import completion_logits
from fslm.nodes.choices.decision import normalised, softmax


@dataclass(frozen=True)
class TokenResults:
    logprob: float  # the completion's summed log-probability
    hits: tuple[bool, ...]  # per completion token: whether it was the model's argmax


def token_results(
    peft_model: object, encoded: Sequence[Encoded], batch_size: int, pad_id: int
) -> list[TokenResults]:
    """Per encoded example, in order: its completion's log-probability and argmax hits (no gradients)."""
    peft_model.eval()  # type: ignore[attr-defined]
    results: list[TokenResults | None] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate([encoded[index] for index in chunk], pad_id)
            logits = completion_logits(peft_model, batch)
            logprobs = torch.log_softmax(logits, -1).gather(1, batch.labels.unsqueeze(1)).squeeze(1)
            hits = logits.argmax(-1) == batch.labels
            for row, index in enumerate(chunk):
                here = batch.loss_rows == row
                results[index] = TokenResults(float(logprobs[here].sum()), tuple(hits[here].tolist()))
    return [result for result in results if result is not None]


def option_probabilities(
    results: Sequence[TokenResults], examples: Sequence[BoostExample], normalize: str
) -> list[list[float]]:
    """Per example, the softmax over its options of their normalised scores, as a choices stage computes it;
    `results` hold every example's options in order."""
    probabilities, position = [], 0
    for item in examples:
        mine = results[position : position + len(item.options)]
        position += len(item.options)
        sizes = [len(option.encode()) for option in item.options]
        scores = normalised([r.logprob for r in mine], [len(r.hits) for r in mine], sizes, normalize)
        probabilities.append(softmax(scores))
    return probabilities


def mixed(members: Sequence[list[list[float]]], weights: Sequence[float]) -> list[list[float]]:
    """The members' option probabilities averaged with `weights` (normalised), example by example."""
    total = sum(weights)
    return [
        [
            sum(w / total * member[i][j] for member, w in zip(members, weights, strict=True))
            for j in range(len(row))
        ]
        for i, row in enumerate(members[0])
    ]


def picks(probabilities: Sequence[Sequence[float]]) -> list[int]:
    return [max(range(len(row)), key=lambda index: (row[index], -index)) for row in probabilities]
