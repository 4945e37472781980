"""The statistics `fslm eval` reports: a 95% interval for a mean score, and a paired comparison of two
pipelines on the same items (wins, losses and an exact sign-test p-value)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "Wilson" for scores that are all 0 or 1, else "normal"


def interval95(scores: Sequence[float]) -> Interval:
    """A 95% interval for the mean of `scores`: Wilson's score interval when every score is 0 or 1 (accuracy),
    else the normal approximation mean ± 1.96·s/√n (scores between 0 and 1, such as F1)."""
    n = len(scores)
    mean = sum(scores) / n
    if all(score in (0.0, 1.0) for score in scores):
        centre = (mean + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 / (1 + Z95**2 / n) * math.sqrt(mean * (1 - mean) / n + Z95**2 / (4 * n * n))
        return Interval(max(0.0, centre - half), min(1.0, centre + half), "Wilson")
    deviation = math.sqrt(sum((score - mean) ** 2 for score in scores) / (n - 1)) if n > 1 else 0.0
    half = Z95 * deviation / math.sqrt(n)
    return Interval(max(0.0, mean - half), min(1.0, mean + half), "normal")


@dataclass(frozen=True)
class Paired:
    wins: int  # items the first scores higher on
    losses: int  # items the first scores lower on
    ties: int
    p_value: float  # two-sided exact sign test on wins against losses (McNemar's exact test for 0/1 scores)


def paired(first: Sequence[float], second: Sequence[float]) -> Paired:
    """Item-by-item comparison of two score lists over the same items."""
    wins = sum(a > b for a, b in zip(first, second, strict=True))
    losses = sum(a < b for a, b in zip(first, second, strict=True))
    return Paired(wins, losses, len(first) - wins - losses, sign_test(wins, losses))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of `wins` against `losses` under p = 1/2 (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)
