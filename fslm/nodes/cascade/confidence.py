"""A step's confidence in its pick, and where a cascade stops. Plain Python (no torch): the node, the
calibration and the benches use the same functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fslm.errors import FslmError
from fslm.nodes.choices.record import ChoicesRecord
from fslm.nodes.stage.record import TokenLogprobs

CHOICE_MEASURES = ("probability", "margin")  # of a choice stage's pick
TOKEN_MEASURES = ("mean_logprob", "min_logprob")  # of a generating stage's tokens


def choice_confidence(measure: str, record: ChoicesRecord) -> float:
    """`probability`: the probability of the picked option; `margin`: that minus the second highest (1 when
    there is one option)."""
    probabilities = record["probabilities"]
    picked = probabilities[record["chosen"]]
    if measure == "probability":
        return picked
    runner_up = max((p for index, p in enumerate(probabilities) if index != record["chosen"]), default=0.0)
    return picked - runner_up


def token_confidence(measure: str, record: TokenLogprobs) -> float:
    """`mean_logprob` or `min_logprob`: the mean or the lowest log-probability of the generated tokens."""
    return record["mean"] if measure == "mean_logprob" else record["min"]


def step_confidence(measure: str, message: Mapping[str, Any]) -> float:
    """A step's confidence from its stage message: its pick's (choice measures) or its tokens' (token
    measures)."""
    if measure in CHOICE_MEASURES:
        return choice_confidence(measure, message["choices"])
    record = message.get("logprobs")
    if record is None:
        raise FslmError(
            f"stage {message['stage']!r} recorded no token log-probabilities, so its {measure} is unknown"
        )
    return token_confidence(measure, record)


def stops_at(confidences: Sequence[float], thresholds: Sequence[float]) -> int:
    """The index of the step that answers: the first whose confidence reaches its threshold, else the last.
    `confidences` may stop early (the steps that ran so far)."""
    for index, (confidence, threshold) in enumerate(zip(confidences, thresholds, strict=False)):
        if confidence >= threshold:
            return index
    return len(thresholds)
