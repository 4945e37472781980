"""Choosing a cascade's thresholds from its steps' results on dev items; the calibration and the benches use
the same functions.

One threshold is shared by every step but the last (for two steps, the only one), and the candidates are
the measure's ends (0 and 1 for a probability; for a log-probability 0 and a whole number at or below the
lowest one seen) and the midpoints between neighbouring confidences seen on the dev items, so every
distinct split of them is tried.

A quality target is met with assurance: the threshold chosen is the cheapest whose accuracy stays within the
tolerance of the last step's on at least a share `assurance` of bootstrap resamples of the dev items. The
cheapest point that meets it on the dev items alone is chosen for its luck on them, and on other items it
falls short more often than not (bench/cascade_crossfit.py measures both rules).
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
ASSURANCE = 0.9  # the share of bootstrap resamples on which a quality target must hold
RESAMPLES = 1000


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


def holding_shares(
    items: Sequence[Sequence[StepResult]],
    points: Sequence[OperatingPoint],
    tolerance: float,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[float]:
    """For each point (as `sweep` gives them: one threshold shared by every step but the last, ascending), the
    share of bootstrap resamples of `items` on which the cascade's accuracy is at most `tolerance` below the
    last step's. Every point sees the same resamples, so the shares differ only by the points."""
    import torch  # here, so that the CLI, which reads this module's defaults, starts without torch

    count = len(items)
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(count, (resamples, count), generator=generator)
    weights = torch.zeros(resamples, count, dtype=torch.float64)
    weights.scatter_add_(1, drawn, torch.ones(resamples, count, dtype=torch.float64))
    confidences = [[step.confidence for step in item] for item in items]

    def gain(index: int, thresholds: Sequence[float]) -> float:  # the cascade's correctness less the last's
        item = items[index]
        return float(item[stops_at(confidences[index], thresholds)].correct) - float(item[-1].correct)

    gains = torch.tensor([gain(index, points[0].thresholds) for index in range(count)], dtype=torch.float64)
    totals = weights @ gains
    # Raising the shared threshold past a confidence can change only that item's answering step.
    crossings = sorted((value, index) for index, item in enumerate(confidences) for value in item[:-1])
    crossed = 0
    shares = []
    for point in points:
        changed = set()
        while crossed < len(crossings) and crossings[crossed][0] < point.thresholds[0]:
            changed.add(crossings[crossed][1])
            crossed += 1
        if changed:
            indices = sorted(changed)
            updated = torch.tensor([gain(index, point.thresholds) for index in indices], dtype=torch.float64)
            totals += weights[:, indices] @ (updated - gains[indices])
            gains[indices] = updated
        shares.append(float((totals >= -tolerance * count - 1e-9).double().mean()))
    return shares


def for_quality(
    items: Sequence[Sequence[StepResult]],
    points: Sequence[OperatingPoint],
    tolerance: float,
    assurance: float = ASSURANCE,
) -> OperatingPoint:
    """The cheapest point whose accuracy is at most `tolerance` below the last step's on at least a share
    `assurance` of bootstrap resamples of `items` (0 takes the cheapest point within `tolerance` on `items`
    themselves)."""
    reference = alone(items, len(items[0]) - 1)[0]
    if assurance == 0:
        kept = [point for point in points if point.accuracy >= reference - tolerance - 1e-12]
    else:
        shares = holding_shares(items, points, tolerance)
        kept = [point for point, share in zip(points, shares, strict=True) if share >= assurance]
    if not kept:
        best = max(points, key=lambda point: point.accuracy)
        raise FslmError(
            f"no threshold keeps the accuracy within {tolerance:g} of the last stage's {reference:.4f} on "
            f"these items with assurance {assurance:g} (the best is {best.accuracy:.4f}); allow more with "
            "--target-quality or ask for less with --assurance"
        )
    return min(kept, key=lambda point: (point.seconds, point.escalated))


def for_budget(points: Sequence[OperatingPoint], budget: float) -> OperatingPoint:
    """The most accurate point that escalates at most a share `budget` of the items (the cheaper on a tie).
    Threshold 0 escalates nothing, so there is always one."""
    kept = [point for point in points if point.escalated <= budget + 1e-12]
    return max(kept, key=lambda point: (point.accuracy, -point.seconds))
