"""What a trained model does on the examples: each example's option probabilities (a choices stage) and
whether each gold answer token is the model's argmax, read from teacher-forced forward passes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    peft_model: Any, encoded: Sequence[Encoded], batch_size: int, pad_id: int
) -> list[TokenResults]:
    """Per encoded example, in order: its completion's log-probability and argmax hits (no gradients)."""
    peft_model.eval()
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


class _TrainingBase:
    """What the runtime's option scorer needs of a loaded base, for a model being trained: each prompt is
    computed once and its options continue from its KV cache (`fslm.runtime.scoring.forward`)."""

    def __init__(self, peft_model: Any, pad_id: int) -> None:
        self.peft_model = peft_model
        self.model = peft_model.get_base_model()
        self.pad_id = pad_id

    def forward(self, adapter_names: list[str], **model_kwargs: Any) -> Any:
        return self.peft_model(**model_kwargs)  # one adapter, the one being trained


def option_probabilities(
    peft_model: Any,
    options: Sequence[Sequence[Encoded]],
    examples: Sequence[BoostExample],
    normalize: str,
    batch_size: int,
    pad_id: int,
) -> list[list[float]]:
    """Per example, the softmax over its options of their normalised scores, as a choices stage computes it;
    `options[i]` are example i's options encoded (one prompt, each option its continuation)."""
    from fslm.runtime.scoring.forward import ScoreRow, score_batch

    peft_model.eval()
    base = _TrainingBase(peft_model, pad_id)
    rows = [
        ScoreRow("", tuple(encoded[0].prompt_ids), tuple(tuple(option.completion_ids) for option in encoded))
        for encoded in options
    ]
    logprobs: list[list[float]] = []
    for start in range(0, len(rows), batch_size):
        # A stand-in for a LoadedBase, with the parts a scoring pass reads (model, pad_id, forward).
        logprobs += score_batch(base, rows[start : start + batch_size])  # type: ignore[arg-type]
    probabilities = []
    for item, scores, encoded in zip(examples, logprobs, options, strict=True):
        sizes = [len(option.encode()) for option in item.options]
        tokens = [len(option.completion_ids) for option in encoded]
        probabilities.append(softmax(normalised(scores, tokens, sizes, normalize)))
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
