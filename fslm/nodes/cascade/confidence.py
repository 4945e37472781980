"""A step's confidence in its pick, and where a cascade stops. Plain Python (no torch): the node, the
calibration and the benches use the same functions."""

from __future__ import annotations

from collections.abc import Sequence

from fslm.nodes.choices.record import ChoicesRecord


def choice_confidence(measure: str, record: ChoicesRecord) -> float:
    """`probability`: the probability of the picked option; `margin`: that minus the second highest (1 when
    there is one option)."""
    probabilities = record["probabilities"]
    picked = probabilities[record["chosen"]]
    if measure == "probability":
        return picked
    runner_up = max((p for index, p in enumerate(probabilities) if index != record["chosen"]), default=0.0)
    return picked - runner_up


def stops_at(confidences: Sequence[float], thresholds: Sequence[float]) -> int:
    """The index of the step that answers: the first whose confidence reaches its threshold, else the last.
    `confidences` may stop early (the steps that ran so far)."""
    for index, (confidence, threshold) in enumerate(zip(confidences, thresholds, strict=False)):
        if confidence >= threshold:
            return index
    return len(thresholds)
