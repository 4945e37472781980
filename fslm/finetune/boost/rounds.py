"""The boosting loop (SAMME): each round trains a member on the weighted examples, measures its weighted
error ε, gives it α and raises the weights of its mistakes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.finetune.boost.members import Measured, StageModel
from fslm.finetune.boost.recipe import WeakEnsembleSpec
from fslm.finetune.boost.samme import (
    EPSILON_FLOOR,
    NoBetterThanChance,
    entropy,
    reweighted,
    samme_alpha,
    weighted_error,
)
from fslm.finetune.boost.task import BoostExample
from fslm.finetune.train import StepLog

MEASURE_BATCH = 8  # examples per forward pass (all their options together)


@dataclass
class BoostCallbacks:
    on_round: Callable[[int, int, int], None] | None = None  # (round, rounds, steps)
    on_step: Callable[[StepLog], None] | None = None
    on_record: Callable[[dict[str, Any]], None] | None = None  # a finished round's record
    on_status: Callable[[str], None] | None = None


@dataclass
class Boosted:
    """The members kept (their adapters under the staging directory), their α, each round's record, why
    boosting stopped early (or None), and each member measured on the extra example sets asked for."""

    adapters: list[Path] = field(default_factory=list)
    alphas: list[float] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    measured: dict[str, list[Measured]] = field(default_factory=dict)


def boost_rounds(
    recipe: WeakEnsembleSpec,
    model: StageModel,
    examples: list[BoostExample],
    classes: int,
    staging: Path,
    task_format: dict[str, Any],
    callbacks: BoostCallbacks,
    also_measure: dict[str, list[BoostExample]] | None = None,
) -> Boosted:
    weights = [1 / len(examples)] * len(examples)
    boosted = Boosted(measured={name: [] for name in also_measure or {}})
    for number in range(1, recipe.rounds + 1):
        started = time.perf_counter()

        def on_start(steps: int, number: int = number) -> None:
            if callbacks.on_round:
                callbacks.on_round(number, recipe.rounds, steps)

        member, progress = model.train(
            examples, weights, recipe.lora, recipe.train, callbacks.on_step, on_start
        )
        if callbacks.on_status:
            callbacks.on_status(f"round {number}: measuring its mistakes on {len(examples)} examples")
        token_level = recipe.error == "token"
        mistakes = model.measure(member, examples, MEASURE_BATCH, token_level).mistakes(
            examples, recipe.error
        )
        error = weighted_error(weights, mistakes)
        try:
            weight = samme_alpha(error, classes)
        except NoBetterThanChance as reason:
            model.release(member)
            boosted.stopped = f"round {number} stopped boosting: {reason}"
            break
        for name, extra in (also_measure or {}).items():
            boosted.measured[name].append(model.measure(member, extra, MEASURE_BATCH, tokens=False))
        record = {
            "round": number,
            "error": round(error, 6),
            "alpha": round(weight.alpha, 6),
            "epsilon_capped": weight.capped,
            "weight_entropy": round(entropy(weights), 6),
            "unweighted_error": round(sum(mistakes) / len(mistakes), 6),
            "train_loss": progress.losses[-1]["loss"] if progress.losses else None,
            "train_seconds": round(progress.seconds, 2),
            "seconds": round(time.perf_counter() - started, 2),
        }
        if weight.capped:
            record["note"] = f"ε = {error:g} was raised to {EPSILON_FLOOR:g} so that α stays finite"
        directory = staging / f"member_{number}"
        model.save(member, directory, {"task_format": task_format, "round": record, "classes": classes})
        model.release(member)
        boosted.adapters.append(directory)
        boosted.alphas.append(weight.alpha)
        boosted.rounds.append(record)
        if callbacks.on_record:
            callbacks.on_record(record)
        weights = reweighted(weights, mistakes, weight.alpha)
    if not boosted.adapters:
        raise FslmError(
            f"{boosted.stopped}; no member is better than chance, so there is no ensemble to write"
        )
    return boosted
