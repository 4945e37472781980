"""Training the router: KL divergence between its distribution over experts and the labels; the held-out
part picks the epoch (lowest KL)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fslm.finetune.router.recipe import RouterTrainSpec
from fslm.runtime.router.model import RouterModel

ENCODE_BATCH = 64  # queries per encoder forward when the encoder is frozen


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_kl: float
    held_out_kl: float
    agreement: float  # held-out queries whose argmax is one of their best-rewarded experts


@dataclass(frozen=True)
class Trained:
    epochs: list[EpochLog]
    best: EpochLog
    choices: list[int]  # the chosen epoch's argmax expert per held-out query


def split(count: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffled indices: the training part and the held-out part (each at least one query)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    cut = min(count - 1, max(1, round(count * held_out)))
    return sorted(order[cut:]), sorted(order[:cut])


def train_router(
    model: RouterModel,
    queries: Sequence[str],
    labels: Sequence[Sequence[float]],
    rewards: Sequence[Sequence[float]],
    parts: tuple[list[int], list[int]],
    spec: RouterTrainSpec,
    train_encoder: bool,
    on_epoch: Callable[[EpochLog], None] = lambda log: None,
) -> Trained:
    """Train `model` in place; it ends with the weights of the epoch of lowest held-out KL."""
    torch.manual_seed(spec.seed)
    train, held = parts
    target = torch.tensor(labels, dtype=torch.float32)
    features = None if train_encoder else _embeddings(model, queries)
    params = list(model.parameters()) if train_encoder else list(model.head.parameters())
    model.encoder.requires_grad_(train_encoder)
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate)
    shuffler = random.Random(spec.seed)
    logs: list[EpochLog] = []
    best: tuple[EpochLog, dict[str, torch.Tensor], list[int]] | None = None
    for epoch in range(1, spec.epochs + 1):
        model.train(train_encoder)
        order = list(train)
        shuffler.shuffle(order)
        total = 0.0
        for start in range(0, len(order), spec.batch_size):
            batch = order[start : start + spec.batch_size]
            loss = _kl(_logits(model, queries, features, batch), target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            held_logits = _logits(model, queries, features, held)
            held_kl = _kl(held_logits, target[held]).item()
        picks = held_logits.argmax(dim=-1).tolist()
        agreement = _agreement(picks, [rewards[index] for index in held])
        log = EpochLog(epoch, total / len(train), held_kl, agreement)
        logs.append(log)
        on_epoch(log)
        if best is None or held_kl < best[0].held_out_kl:
            state = {key: value.detach().clone() for key, value in model.state_dict().items()}
            best = (log, state, picks)
    assert best is not None  # at least one epoch ran
    model.load_state_dict(best[1])
    return Trained(logs, best[0], best[2])


def _embeddings(model: RouterModel, queries: Sequence[str]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                model.embed(queries[start : start + ENCODE_BATCH])
                for start in range(0, len(queries), ENCODE_BATCH)
            ]
        )


def _logits(
    model: RouterModel, queries: Sequence[str], features: torch.Tensor | None, indices: list[int]
) -> torch.Tensor:
    if features is not None:
        return model.head(features[indices])
    return model([queries[index] for index in indices])


def _kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.kl_div(logits.log_softmax(dim=-1), target, reduction="batchmean")


def _agreement(picks: list[int], rewards: Sequence[Sequence[float]]) -> float:
    hits = sum(1 for pick, row in zip(picks, rewards, strict=True) if row[pick] == max(row))
    return hits / len(picks)
