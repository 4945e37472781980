"""SAMME (Zhu et al. 2009), the multi-class AdaBoost EnsemW2S uses: a round's weighted error, its α, and the
example weights for the next round. Plain Python.

A mistake is a number in [0, 1]: 1 or 0 at sample level, the fraction of wrong answer tokens at token level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# ε is never taken below this: a round with no weighted mistakes would get an infinite α.
EPSILON_FLOOR = 1e-6


@dataclass(frozen=True)
class RoundWeight:
    error: float  # ε: the weighted mistakes, as measured
    alpha: float
    capped: bool  # ε was 0 (or below the floor) and was raised to EPSILON_FLOOR to keep α finite


class NoBetterThanChance(Exception):
    """The round's weighted error is at or above chance, 1 − 1/K: its α would be ≤ 0."""

    def __init__(self, error: float, classes: int) -> None:
        super().__init__(
            f"weighted error ε = {error:.4f} is at or above chance for K = {classes} "
            f"(1 − 1/K = {1 - 1 / classes:.4f}), so the round's α = ln((1−ε)/ε) + ln(K−1) would be ≤ 0"
        )
        self.error = error
        self.classes = classes


def weighted_error(weights: Sequence[float], mistakes: Sequence[float]) -> float:
    return sum(w * m for w, m in zip(weights, mistakes, strict=True)) / sum(weights)


def samme_alpha(error: float, classes: int) -> RoundWeight:
    """α = ln((1−ε)/ε) + ln(K−1); NoBetterThanChance when ε ≥ 1 − 1/K."""
    if classes < 2:
        raise ValueError("SAMME needs K >= 2 classes")
    if error >= 1 - 1 / classes:
        raise NoBetterThanChance(error, classes)
    used = max(error, EPSILON_FLOOR)
    alpha = math.log((1 - used) / used) + math.log(classes - 1)
    return RoundWeight(error=error, alpha=alpha, capped=error < EPSILON_FLOOR)


def reweighted(weights: Sequence[float], mistakes: Sequence[float], alpha: float) -> list[float]:
    """Each example's weight times exp(α · mistake), renormalised to sum 1."""
    raised = [w * math.exp(alpha * m) for w, m in zip(weights, mistakes, strict=True)]
    total = sum(raised)
    return [w / total for w in raised]


def entropy(weights: Sequence[float]) -> float:
    """The weights' entropy in nats (ln N when uniform): how far boosting has concentrated them."""
    total = sum(weights)
    return -sum(w / total * math.log(w / total) for w in weights if w > 0)
