"""Micro-batches of similar length, and their tensors with the positions the loss is computed at."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from fslm.finetune.encode import Encoded


@dataclass
class Batch:
    input_ids: torch.Tensor  # [rows, longest], right-padded
    attention_mask: torch.Tensor
    loss_rows: torch.Tensor  # with loss_positions: where a completion token is predicted
    loss_positions: torch.Tensor
    labels: torch.Tensor  # the completion token predicted at each (row, position)
    label_weights: torch.Tensor | None = None  # each label's example weight, when examples are weighted

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def length_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (little padding), the batches in a seeded random order.

    Ties in length are broken randomly too, so equal-length examples do not always share a batch.
    """
    shuffler = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], shuffler.random()))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    shuffler.shuffle(batches)
    return batches


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Micro-batches over as many epochs as asked for; epoch e is ordered by seed + e."""
    epoch = 0
    while True:
        yield from length_batches(lengths, batch_size, seed + epoch)
        epoch += 1


def collate(examples: Sequence[Encoded], pad_id: int, weights: Sequence[float] | None = None) -> Batch:
    """The examples as one right-padded batch; `weights` (one per example) scale each example's loss."""
    longest = max(len(example) for example in examples)
    input_ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    rows, positions, labels = [], [], []
    for row, example in enumerate(examples):
        ids = example.ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        # The hidden state at position p predicts token p + 1: the last prompt token predicts the first
        # completion token, and so on up to the end-of-sequence token.
        first = len(example.prompt_ids) - 1
        for position in range(first, len(ids) - 1):
            rows.append(row)
            positions.append(position)
            labels.append(ids[position + 1])
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        loss_rows=torch.tensor(rows, dtype=torch.long),
        loss_positions=torch.tensor(positions, dtype=torch.long),
        labels=torch.tensor(labels, dtype=torch.long),
        label_weights=None if weights is None else torch.tensor([float(weights[row]) for row in rows]),
    )
