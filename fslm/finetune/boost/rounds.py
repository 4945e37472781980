"""The boosting loop (SAMME): each round trains a member on the weighted examples, measures its weighted
error ε, gives it α and raises the weights of its mistakes. A finished round leaves its state beside its
adapter (ROUND_FILE), so an interrupted run resumes after its last finished round."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.files import write_text_atomically
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
ROUND_FILE = "round.json"  # written last in a member's directory: the round is finished


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
    resume: bool = False,
) -> Boosted:
    """The rounds of SAMME; with `resume`, the rounds an interrupted run finished in `staging` are kept and
    boosting continues from the weights they left."""
    fingerprint = round_fingerprint(recipe, examples, classes, also_measure or {})
    weights = [1 / len(examples)] * len(examples)
    boosted = Boosted(measured={name: [] for name in also_measure or {}})
    if resume:
        weights = finished_rounds(staging, fingerprint, boosted) or weights
        if boosted.adapters and callbacks.on_status:
            callbacks.on_status(f"resuming after round {len(boosted.adapters)}, the last one finished")
    for number in range(len(boosted.adapters) + 1, recipe.rounds + 1):
        started = time.perf_counter()
        directory = staging / f"member_{number}"
        shutil.rmtree(directory, ignore_errors=True)  # an unfinished round's leftovers

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
        measured = {
            name: model.measure(member, extra, MEASURE_BATCH, tokens=False)
            for name, extra in (also_measure or {}).items()
        }
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
        model.save(member, directory, {"task_format": task_format, "round": record, "classes": classes})
        model.release(member)
        weights = reweighted(weights, mistakes, weight.alpha)
        state = {
            "fingerprint": fingerprint,
            "record": record,
            "alpha": weight.alpha,
            "weights": weights,
            "probabilities": {name: found.probabilities for name, found in measured.items()},
        }
        write_text_atomically(directory / ROUND_FILE, json.dumps(state) + "\n")
        keep_round(boosted, directory, weight.alpha, record, measured)
        if callbacks.on_record:
            callbacks.on_record(record)
    if not boosted.adapters:
        raise FslmError(
            f"{boosted.stopped}; no member is better than chance, so there is no ensemble to write"
        )
    return boosted


def keep_round(
    boosted: Boosted, directory: Path, alpha: float, record: dict[str, Any], measured: dict[str, Measured]
) -> None:
    boosted.adapters.append(directory)
    boosted.alphas.append(alpha)
    boosted.rounds.append(record)
    for name, found in measured.items():
        boosted.measured[name].append(found)


def finished_rounds(staging: Path, fingerprint: str, boosted: Boosted) -> list[float] | None:
    """Keep the rounds an interrupted run finished (member_1, member_2, … while each has its ROUND_FILE);
    the example weights the last one left, or None when none finished."""
    weights = None
    number = 1
    while (state_file := staging / f"member_{number}" / ROUND_FILE).is_file():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state["fingerprint"] != fingerprint:
            raise FslmError(
                f"the interrupted run in {staging} boosted another recipe or other data (its round {number} "
                "does not match this one's); run without --resume, with --force, to start afresh"
            )
        measured = {name: Measured(found, []) for name, found in state["probabilities"].items()}
        keep_round(boosted, state_file.parent, state["alpha"], state["record"], measured)
        weights = state["weights"]
        number += 1
    return weights


def round_fingerprint(
    recipe: WeakEnsembleSpec,
    examples: list[BoostExample],
    classes: int,
    also_measure: dict[str, list[BoostExample]],
) -> str:
    """What a finished round depends on: the recipe, K and every example set, hashed."""

    def rows(items: list[BoostExample]) -> list[Any]:
        return [[item.example.variables, item.example.target, item.options, item.gold] for item in items]

    content = {
        "recipe": recipe.model_dump(mode="json"),
        "classes": classes,
        "examples": rows(examples),
        "measured": {name: rows(items) for name, items in sorted(also_measure.items())},
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
