"""Choosing an expert: the learned router's cost-aware argmax, rank's confidences, the random and fixed
baselines. Plain Python (no torch): the node and the benches use the same functions."""

from __future__ import annotations

import random
from collections.abc import Sequence

from fslm.nodes.choices.decision import argmax


def cost_aware_scores(
    probabilities: Sequence[float], costs: Sequence[float], cost_weight: float
) -> list[float]:
    """Each expert's probability minus `cost_weight` × its cost as a fraction of the largest cost."""
    largest = max(costs)
    return [
        probability - cost_weight * cost / largest
        for probability, cost in zip(probabilities, costs, strict=True)
    ]


def learned_choice(probabilities: Sequence[float], costs: Sequence[float], cost_weight: float) -> int:
    return argmax(cost_aware_scores(probabilities, costs, cost_weight))


def random_choice(count: int, seed: int, query: str) -> int:
    """A uniformly random index, the same for the same seed and query (so a rerun routes alike)."""
    return random.Random(f"{seed}\0{query}").randrange(count)


def normalised(values: Sequence[float]) -> list[float]:
    """`values` scaled to sum 1 (uniform when they sum to 0)."""
    total = sum(values)
    return [value / total for value in values] if total > 0 else [1 / len(values)] * len(values)


def one_hot(count: int, index: int) -> list[float]:
    return [1.0 if position == index else 0.0 for position in range(count)]
