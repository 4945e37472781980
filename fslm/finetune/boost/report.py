"""The weak-to-strong report: each system's mean per-item score on the held-out hard test items (accuracy when
the scores are 0 or 1; under the key `accuracy` either way) with a 95% interval, paired wins and losses, and
the performance gap recovered (PGR) with a paired bootstrap interval. Plain Python."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fslm.eval.stats import interval95, paired

SYSTEMS = ("weak_single", "weak_ensemble", "strong_on_single", "strong_on_ensemble", "strong_on_gold")
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Gap:
    value: float | None  # None when the ceiling does not beat the weak model (PGR undefined)
    low: float | None
    high: float | None


def pgr(weak: float, w2s: float, ceiling: float) -> float | None:
    """(w2s − weak) / (ceiling − weak): the share of the weak-to-ceiling gap the strong stage recovers."""
    return None if ceiling <= weak else (w2s - weak) / (ceiling - weak)


def gap_recovered(correct: Mapping[str, Sequence[float]], w2s: str, seed: int = 0) -> Gap:
    """PGR of `w2s` over the weak single model, with a 95% percentile interval from resampling the items
    (all systems resampled together, so the interval keeps their pairing)."""
    n = len(correct["weak_single"])

    def at(items: Sequence[int]) -> float | None:
        mean = {name: sum(correct[name][i] for i in items) / len(items) for name in correct}
        return pgr(mean["weak_single"], mean[w2s], mean["strong_on_gold"])

    value = at(range(n))
    shuffler = random.Random(seed)
    draws = [at([shuffler.randrange(n) for _ in range(n)]) for _ in range(BOOTSTRAP_SAMPLES)]
    defined = sorted(draw for draw in draws if draw is not None)
    if value is None or len(defined) < BOOTSTRAP_SAMPLES // 2:
        return Gap(value, None, None)
    return Gap(value, defined[int(0.025 * len(defined))], defined[int(0.975 * len(defined)) - 1])


def w2s_report(correct: Mapping[str, Sequence[float]]) -> dict:
    """The report's numbers, by system, plus the paired comparisons and both PGRs."""
    systems = {}
    for name in SYSTEMS:
        scores = correct[name]
        interval = interval95(scores)
        systems[name] = {
            "accuracy": sum(scores) / len(scores),
            "low": interval.low,
            "high": interval.high,
        }
    comparisons = {}
    for first, second in (
        ("weak_ensemble", "weak_single"),
        ("strong_on_ensemble", "strong_on_single"),
        ("strong_on_single", "weak_single"),
        ("strong_on_ensemble", "weak_ensemble"),
        ("strong_on_gold", "strong_on_single"),
        ("strong_on_gold", "strong_on_ensemble"),
    ):
        result = paired(correct[first], correct[second])
        comparisons[f"{first} vs {second}"] = vars(result)
    gaps = {name: vars(gap_recovered(correct, name)) for name in ("strong_on_single", "strong_on_ensemble")}
    return {"items": len(correct["weak_single"]), "systems": systems, "paired": comparisons, "pgr": gaps}
