"""`weak_to_strong(recipe)`: EnsemW2S on a choice task or a text task. Split the labelled data easy / hard;
boost a weak ensemble on the easy part; label the hard part with it (and with its first member alone, the
classic single weak supervisor); fine-tune the strong stage on each label set and on the gold labels; report
all five on held-out hard test items, with the performance gap recovered.

Choices stages are labelled and scored by the option they pick; text stages by their greedy answers, written
through the runtime and scored by a metric of fslm eval (`labels`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.files import replace_directory
from fslm.finetune.boost.labels import choice_labels, correct_picks, strong_text_scores, text_labels
from fslm.finetune.boost.measure import picks
from fslm.finetune.boost.members import StageModel
from fslm.finetune.boost.recipe import W2SRecipe
from fslm.finetune.boost.report import w2s_report
from fslm.finetune.boost.rounds import MEASURE_BATCH, BoostCallbacks, boost_rounds
from fslm.finetune.boost.split import easy_and_hard
from fslm.finetune.boost.task import classes, read_examples
from fslm.finetune.boost.workflow import fitting_examples, output_staging, task_format, write_checkpoint
from fslm.finetune.output import check_output_place
from fslm.finetune.target import tunable_stage, tuned_model
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec import PipelineSpec, load_spec

logger = logging.getLogger(__name__)
REPORT_FILE = "w2s.json"
LABELS_FILE = "labels.jsonl"
# Text answers are scored by exact match unless the recipe says otherwise: boosting counts a text answer right
# when greedy decoding reproduces the gold answer, and the strong stage is trained to write its label exactly.
DEFAULT_METRIC = "exact"
ENOUGH_TEST_ITEMS = 300


@dataclass
class W2SCallbacks:
    boost: BoostCallbacks = field(default_factory=BoostCallbacks)
    on_phase: Callable[[str], None] | None = None  # a phase starts: its name
    on_warning: Callable[[str], None] | None = None


@dataclass(frozen=True)
class W2SResult:
    output: Path
    report: dict[str, Any]


def weak_to_strong(
    recipe: W2SRecipe,
    *,
    force: bool = False,
    resume: bool = False,
    callbacks: W2SCallbacks | None = None,
    recipe_file: Path | None = None,
) -> W2SResult:
    callbacks = callbacks or W2SCallbacks()
    phases: dict[str, float] = {}
    weak_spec, strong_spec = load_spec(recipe.weak.target.pipeline), load_spec(recipe.strong.target.pipeline)
    choices = picks_options(recipe, weak_spec, strong_spec)
    metric = scoring_metric(recipe, choices)
    warn = callbacks.on_warning or logger.warning
    if (warning := strong_is_weak(recipe, weak_spec, strong_spec)) is not None:
        warn(warning)
    reads = [
        recipe.weak.target.pipeline,
        recipe.strong.target.pipeline,
        recipe.weak.data.path,
        recipe.test.path,
    ]
    check_output_place(recipe.output, [*reads, *([recipe_file] if recipe_file else [])])
    data_weak = read_examples(recipe.weak.data, weak_spec, recipe.weak.target.stage)
    data_strong = read_examples(recipe.weak.data, strong_spec, recipe.strong.target.stage)
    test_weak = read_examples(recipe.test, weak_spec, recipe.weak.target.stage)
    test_strong = read_examples(recipe.test, strong_spec, recipe.strong.target.stage)
    if not test_weak:
        raise FslmError(f"the test data {recipe.test.path} holds no items")
    if len(test_weak) < ENOUGH_TEST_ITEMS:
        warn(
            f"only {len(test_weak)} test items: intervals will be wide ({ENOUGH_TEST_ITEMS} or more advised)"
        )
    staging = output_staging(recipe.output, force, resume)

    def phase(name: str) -> None:
        phases[name] = time.perf_counter()
        if callbacks.on_phase:
            callbacks.on_phase(name)

    phase("split")
    weak = StageModel(weak_spec, recipe.weak.target.stage, recipe.weak.train.dtype)
    easy, hard = easy_and_hard(recipe, weak, data_weak)
    hard = hard[: recipe.max_hard]
    hard_weak, hard_strong = [data_weak[i] for i in hard], [data_strong[i] for i in hard]
    easy_items = fitting_examples(weak, [data_weak[i] for i in easy], recipe.weak.train.max_length)
    (staging / "weak").mkdir(exist_ok=True)
    phase("weak ensemble")
    k = classes(weak.stage, easy_items, recipe.weak.classes)
    # A choices stage's members are measured on the hard and test items while each is loaded.
    measure = {"hard": hard_weak, "test": test_weak} if choices else None
    task = task_format(weak_spec, recipe.weak.target.stage)
    boosted = boost_rounds(
        recipe.weak,
        weak,
        easy_items,
        k,
        staging / "weak",
        task.model_dump(),
        callbacks.boost,
        measure,
        resume=resume,
    )
    write_checkpoint(
        staging / "weak",
        recipe.weak,
        weak,
        task,
        boosted,
        k,
        len(easy) - len(easy_items),
        phases["weak ensemble"],
    )
    del weak
    phase("labels")
    if choices:
        labels = choice_labels(boosted, hard_strong, test_weak)
    else:
        labels = text_labels(
            weak_spec, recipe.weak.target.stage, boosted, (hard_weak, hard_strong), test_weak, metric
        )
    scores = dict(labels.scores)
    strong = StageModel(strong_spec, recipe.strong.target.stage, recipe.strong.train.dtype)
    adapters: dict[str, Path] = {}
    for name, labelled in labels.training.items():
        phase(f"strong on {name} labels")
        examples = fitting_examples(strong, labelled, recipe.strong.train.max_length)
        model, _ = strong.train(
            examples,
            None,
            recipe.strong.lora,
            recipe.strong.train,
            callbacks.boost.on_step,
            _on_start(callbacks, name),
        )
        if choices:
            measured = strong.measure(model, test_strong, MEASURE_BATCH, tokens=False)
            scores[f"strong_on_{name}"] = correct_picks(picks(measured.probabilities or []), test_strong)
        adapters[name] = staging / f"strong_on_{name}"
        strong.save(model, adapters[name], {"labels": name, "examples": len(examples)})
        strong.release(model)
    del strong
    if not choices:
        phase("strong on test items")
        written = strong_text_scores(strong_spec, recipe.strong.target.stage, adapters, test_strong, metric)
        scores |= {f"strong_on_{name}": item_scores for name, item_scores in written.items()}
    phase("done")
    names = list(phases)
    report = w2s_report(scores) | {
        "metric": metric,
        "split": {"easy": len(easy), "hard": len(hard), "by": recipe.split.field or "weak loss"},
        "label_agreement_with_gold": labels.agreement,
        "alphas": boosted.alphas,
        "rounds": boosted.rounds,
        "stopped": boosted.stopped,
        "phase_seconds": {name: round(phases[after] - phases[name], 2) for name, after in pairwise(names)},
        "correct": scores,
    }
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    (staging / LABELS_FILE).write_text("".join(json.dumps(record) + "\n" for record in labels.records()))
    replace_directory(recipe.output)
    return W2SResult(recipe.output, report)


def picks_options(recipe: W2SRecipe, weak: PipelineSpec, strong: PipelineSpec) -> bool:
    """Whether both stages pick options (True) or both write text (False); FslmError when they differ."""
    kinds = [
        isinstance(tunable_stage(spec, target.stage), ChoiceStageSpec)
        for spec, target in ((weak, recipe.weak.target), (strong, recipe.strong.target))
    ]
    if kinds[0] != kinds[1]:
        words = ["a choices stage" if kind else "a text stage" for kind in kinds]
        raise FslmError(
            f"the weak stage '{recipe.weak.target.stage}' of {recipe.weak.target.pipeline} is {words[0]} and "
            f"the strong stage '{recipe.strong.target.stage}' of {recipe.strong.target.pipeline} is "
            f"{words[1]}: the strong stage learns the weak labels, so both must pick options or both must "
            "write text"
        )
    return kinds[0]


def scoring_metric(recipe: W2SRecipe, choices: bool) -> str:
    """How test answers are scored: a choices stage's by its pick (accuracy), a text stage's by the recipe's
    metric (default DEFAULT_METRIC)."""
    if not choices:
        return recipe.metric or DEFAULT_METRIC
    if recipe.metric is not None:
        raise FslmError(
            f"metric: {recipe.metric} scores written answers, but these stages pick options and are scored "
            "by the option they pick; leave metric out"
        )
    return "accuracy"


def strong_is_weak(recipe: W2SRecipe, weak: PipelineSpec, strong: PipelineSpec) -> str | None:
    """A warning when the strong stage runs on the weak members' own model, else None."""
    weak_model = tuned_model(weak, tunable_stage(weak, recipe.weak.target.stage))
    strong_model = tuned_model(strong, tunable_stage(strong, recipe.strong.target.stage))
    if weak_model.source != strong_model.source:
        return None
    return (
        f"the strong stage runs on {strong_model.source}, the weak members' own model: this measures "
        "self-training, not weak-to-strong generalisation"
    )


def _on_start(callbacks: W2SCallbacks, name: str) -> Callable[[int], None]:
    def started(steps: int) -> None:
        if callbacks.boost.on_round:
            callbacks.boost.on_round(0, 0, steps)

    return started
