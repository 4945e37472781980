"""Rewards of the experts' answers: an eval metric against the reference, a sequence-classification reward
model, or an allowlisted callable. Each turns (query, expert message, reference) into a number."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fslm.errors import FslmError
from fslm.eval.metrics import METRICS, score
from fslm.finetune.router.recipe import RewardSpec
from fslm.graph.state import StageMessage
from fslm.nodes.choices.record import choices_record
from fslm.nodes.choices.scoring import CHOICE_METRICS


@dataclass(frozen=True)
class Answer:
    query: str  # the router's query text (its rendered prompt)
    message: StageMessage  # the expert's message
    reference: Any  # the record's reference (None when the reward needs none)


Rewarder = Callable[[Sequence[Answer]], list[float]]

# A reward metric of choice experts only, besides fslm eval's: unlike acc's 0 or 1, it tells apart experts
# that pick the same option, so experts that are all right (or all wrong) still get different labels.
GOLD_PROBABILITY = "gold_probability"


def make_rewarder(spec: RewardSpec) -> Rewarder:
    """The reward function the recipe names, checked and loaded now (before any expert runs)."""
    if spec.metric is not None:
        return _metric_rewarder(spec.metric)
    if spec.model is not None:
        return _model_rewarder(spec.model, spec.batch_size)
    assert spec.callable is not None  # validated: exactly one
    return _callable_rewarder(spec.callable, spec.allow)


def _metric_rewarder(metric: str) -> Rewarder:
    if metric not in METRICS and metric not in [*CHOICE_METRICS, GOLD_PROBABILITY]:
        known = ", ".join([*METRICS, *CHOICE_METRICS, GOLD_PROBABILITY])
        raise FslmError(f"reward metric {metric!r} is not an fslm eval metric; metrics: {known}")

    def reward(answers: Sequence[Answer]) -> list[float]:
        return [_metric_value(metric, answer) for answer in answers]

    return reward


def _metric_value(metric: str, answer: Answer) -> float:
    record = choices_record(answer.message)
    if metric in [*CHOICE_METRICS, GOLD_PROBABILITY]:
        if record is None:
            raise FslmError(
                f"reward metric {metric!r} scores choice stages, but expert {answer.message['stage']!r} "
                "generates text; use a text metric (exact, contains, f1, numeric)"
            )
        from fslm.nodes.choices.scoring import choice_scores

        options = record["options"]
        gold = answer.reference
        if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(options):
            gold = options[gold]
        if gold not in options:
            raise FslmError(f"the reference {gold!r} is not one of the options {options!r}")
        if metric == GOLD_PROBABILITY:
            return record["probabilities"][options.index(gold)]
        weights = [1.0] * len(record["scorers"])
        return choice_scores(record, gold, weights)[metric]
    return score(metric, answer.message["text"], answer.reference)


def _model_rewarder(name: str, batch_size: int) -> Rewarder:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(name).eval()
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise FslmError(f"the reward model {name!r} cannot be loaded: {reason}") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    def reward(answers: Sequence[Answer]) -> list[float]:
        rewards: list[float] = []
        for start in range(0, len(answers), batch_size):
            chunk = answers[start : start + batch_size]
            batch = tokenizer(
                [answer.query for answer in chunk],
                [answer.message["text"] for answer in chunk],
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = model(**batch).logits
            rewards += logits[:, 0].float().tolist()
        return rewards

    return reward


def _callable_rewarder(reference: str, allow: list[str]) -> Rewarder:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise FslmError(f"reward callable {reference!r} must be written 'module:function'")
    if module_name not in allow:
        listed = ", ".join(allow) if allow else "none"
        raise FslmError(
            f"reward callable {reference!r} comes from module {module_name!r}, which the recipe's "
            f"reward.allow does not list (allowed: {listed}); a recipe runs only code it names there"
        )
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise FslmError(f"reward callable {reference!r} cannot be imported: {error}") from error
    if not callable(function):
        raise FslmError(f"reward callable {reference!r} is not callable")

    def reward(answers: Sequence[Answer]) -> list[float]:
        values = []
        for answer in answers:
            value = function(answer.query, answer.message["text"], answer.reference)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise FslmError(f"reward callable {reference!r} returned {value!r}, not a number")
            values.append(float(value))
        return values

    return reward
