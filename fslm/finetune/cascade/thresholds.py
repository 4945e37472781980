"""Choosing a cascade's thresholds from its steps' results on dev items. Plain Python: the calibration and
the benches use the same functions.

One threshold is shared by every step but the last (for two steps, the only one), and the candidates are
the measure's ends (0 and 1 for a probability; for a log-probability 0 and a whole number at or below the
lowest one seen) and the midpoints between neighbouring confidences seen on the dev items, so every
distinct split of them is tried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from fslm.errors import FslmError
from fslm.nodes.cascade.confidence import stops_at

# Written into the pipeline rounded; the figures reported are those of the rounded thresholds.
PLACES = 4


@dataclass(frozen=True)
class StepResult:
    """One step's result on one item."""

    confidence: float
    correct: bool
    seconds: float  # measured


@dataclass(frozen=True)
class OperatingPoint:
    thresholds: tuple[float, ...]
    accuracy: float
    escalated: float  # share of items on which more than the first step ran
    seconds: float  # mean measured seconds per item, of the steps that ran


def operating_point(items: Sequence[Sequence[StepResult]], thresholds: Sequence[float]) -> OperatingPoint:
    """The cascade's accuracy and cost on `items` (each: its steps' results, cheapest first)."""
    stops = [stops_at([step.confidence for step in item], thresholds) for item in items]
    count = len(items)
    return OperatingPoint(
        tuple(thresholds),
        sum(item[stop].correct for item, stop in zip(items, stops, strict=True)) / count,
        sum(stop > 0 for stop in stops) / count,
        sum(sum(step.seconds for step in item[: stop + 1]) for item, stop in zip(items, stops, strict=True))
        / count,
    )


def candidate_thresholds(items: Sequence[Sequence[StepResult]], logprob: bool = False) -> list[float]:
    """The measure's ends and the midpoints between neighbouring distinct confidences of the steps that may
    escalate. The ends: 0 and 1 for a probability or margin; 0 and the floor of the lowest confidence (so
    every step answers) for a log-probability."""
    seen = sorted({step.confidence for item in items for step in item[:-1]})
    midpoints = [(low + high) / 2 for low, high in pairwise(seen)]
    ends = {0.0, float(math.floor(seen[0])) if seen else -1.0} if logprob else {0.0, 1.0}
    return sorted(ends | {round(value, PLACES) for value in midpoints})


def sweep(items: Sequence[Sequence[StepResult]], logprob: bool = False) -> list[OperatingPoint]:
    """The operating point of every candidate threshold, shared by every step but the last."""
    steps = len(items[0])
    return [
        operating_point(items, [threshold] * (steps - 1))
        for threshold in candidate_thresholds(items, logprob)
    ]


def alone(items: Sequence[Sequence[StepResult]], step: int) -> tuple[float, float]:
    """Accuracy and mean measured seconds of step `step` answering every item by itself."""
    return (
        sum(item[step].correct for item in items) / len(items),
        sum(item[step].seconds for item in items) / len(items),
    )


def for_quality(points: Sequence[OperatingPoint], reference: float, tolerance: float) -> OperatingPoint:
    """The cheapest point whose accuracy is at most `tolerance` below `reference` (the dearest step's)."""
    kept = [point for point in points if point.accuracy >= reference - tolerance - 1e-12]
    if not kept:
        best = max(points, key=lambda point: point.accuracy)
        raise FslmError(
            f"no threshold keeps the accuracy within {tolerance:g} of the last stage's {reference:.4f} on "
            f"these items (the best is {best.accuracy:.4f}); allow more with --target-quality"
        )
    return min(kept, key=lambda point: (point.seconds, point.escalated))


def for_budget(points: Sequence[OperatingPoint], budget: float) -> OperatingPoint:
    """The most accurate point that escalates at most a share `budget` of the items (the cheaper on a tie).
    Threshold 0 escalates nothing, so there is always one."""
    kept = [point for point in points if point.escalated <= budget + 1e-12]
    return max(kept, key=lambda point: (point.accuracy, -point.seconds))
