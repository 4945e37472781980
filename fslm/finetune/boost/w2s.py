"""`weak_to_strong(recipe)`: EnsemW2S on a choice task. Split the labelled data easy / hard; boost a weak
ensemble on the easy part; label the hard part with it (and with its first member alone, the classic single
weak supervisor); fine-tune the strong stage on each label set and on the gold labels; report all five on
held-out hard test items, with the performance gap recovered."""

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
from fslm.files import replace_directory, staging_directory
from fslm.finetune.boost.measure import mixed, picks
from fslm.finetune.boost.members import StageModel
from fslm.finetune.boost.recipe import W2SRecipe
from fslm.finetune.boost.report import w2s_report
from fslm.finetune.boost.rounds import MEASURE_BATCH, BoostCallbacks, boost_rounds
from fslm.finetune.boost.split import easy_and_hard
from fslm.finetune.boost.task import BoostExample, classes, read_examples
from fslm.finetune.boost.workflow import fitting_examples, task_format, write_checkpoint
from fslm.finetune.output import check_output, check_output_place
from fslm.finetune.sources import Example
from fslm.finetune.target import tunable_stage
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec import PipelineSpec, load_spec

logger = logging.getLogger(__name__)
REPORT_FILE = "w2s.json"
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
    callbacks: W2SCallbacks | None = None,
    recipe_file: Path | None = None,
) -> W2SResult:
    callbacks = callbacks or W2SCallbacks()
    phases: dict[str, float] = {}
    weak_spec, strong_spec = _choice_spec(recipe.weak.target), _choice_spec(recipe.strong.target)
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
    check_output(recipe.output, "", force, resume=False)

    def phase(name: str) -> None:
        phases[name] = time.perf_counter()
        if callbacks.on_phase:
            callbacks.on_phase(name)

    phase("split")
    weak = StageModel(weak_spec, recipe.weak.target.stage, recipe.weak.train.dtype)
    easy, hard = easy_and_hard(recipe, weak, data_weak)
    hard = hard[: recipe.max_hard]
    easy_items = fitting_examples(weak, [data_weak[i] for i in easy], recipe.weak.train.max_length)
    staging = staging_directory(recipe.output)
    (staging / "weak").mkdir()
    phase("weak ensemble")
    k = classes(weak.stage, easy_items, recipe.weak.classes)
    measure = {"hard": [data_weak[i] for i in hard], "test": test_weak}
    task = task_format(weak_spec, recipe.weak.target.stage)
    boosted = boost_rounds(
        recipe.weak, weak, easy_items, k, staging / "weak", task.model_dump(), callbacks.boost, measure
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
    single = picks(boosted.measured["hard"][0].probabilities or [])
    ensemble = picks(mixed([m.probabilities or [] for m in boosted.measured["hard"]], boosted.alphas))
    correct = {
        "weak_single": _correct(picks(boosted.measured["test"][0].probabilities or []), test_weak),
        "weak_ensemble": _correct(
            picks(mixed([m.probabilities or [] for m in boosted.measured["test"]], boosted.alphas)), test_weak
        ),
    }
    labels = {"single": single, "ensemble": ensemble, "gold": [data_strong[i].gold for i in hard]}
    strong = StageModel(strong_spec, recipe.strong.target.stage, recipe.strong.train.dtype)
    for name, chosen in labels.items():
        phase(f"strong on {name} labels")
        examples = [_labelled(data_strong[i], label) for i, label in zip(hard, chosen, strict=True)]
        examples = fitting_examples(strong, examples, recipe.strong.train.max_length)
        model, _ = strong.train(
            examples,
            None,
            recipe.strong.lora,
            recipe.strong.train,
            callbacks.boost.on_step,
            _on_start(callbacks, name),
        )
        measured = strong.measure(model, test_strong, MEASURE_BATCH, tokens=False)
        correct[f"strong_on_{name}"] = _correct(picks(measured.probabilities or []), test_strong)
        strong.save(model, staging / f"strong_on_{name}", {"labels": name, "examples": len(examples)})
        strong.release(model)
    phase("done")
    names = list(phases)
    report = w2s_report(correct) | {
        "split": {"easy": len(easy), "hard": len(hard), "by": recipe.split.field or "weak loss"},
        "label_agreement_with_gold": {
            name: sum(a == b for a, b in zip(chosen, labels["gold"], strict=True)) / len(hard)
            for name, chosen in labels.items()
            if name != "gold"
        },
        "alphas": boosted.alphas,
        "rounds": boosted.rounds,
        "stopped": boosted.stopped,
        "phase_seconds": {name: round(phases[after] - phases[name], 2) for name, after in pairwise(names)},
        "correct": correct,
    }
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    replace_directory(recipe.output)
    return W2SResult(recipe.output, report)


def _choice_spec(target) -> PipelineSpec:
    spec = load_spec(target.pipeline)
    if not isinstance(tunable_stage(spec, target.stage), ChoiceStageSpec):
        raise FslmError(
            f"stage '{target.stage}' of {target.pipeline} writes text; fslm finetune w2s measures weak and "
            "strong stages by the option they pick, so both must be choices stages"
        )
    return spec


def strong_is_weak(recipe: W2SRecipe, weak: PipelineSpec, strong: PipelineSpec) -> str | None:
    """A warning when the strong stage runs on the weak members' own model, else None."""
    weak_model = weak.models[weak.stages[recipe.weak.target.stage].model]  # type: ignore[attr-defined]
    strong_model = strong.models[strong.stages[recipe.strong.target.stage].model]  # type: ignore[attr-defined]
    if weak_model.source != strong_model.source:
        return None
    return (
        f"the strong stage runs on {strong_model.source}, the weak members' own model: this measures "
        "self-training, not weak-to-strong generalisation"
    )


def _labelled(item: BoostExample, label: int) -> BoostExample:
    return BoostExample(Example(item.example.variables, item.options[label]), item.options, label)


def _correct(chosen: list[int], examples: list[BoostExample]) -> list[float]:
    return [float(pick == item.gold) for pick, item in zip(chosen, examples, strict=True)]


def _on_start(callbacks: W2SCallbacks, name: str) -> Callable[[int], None]:
    def started(steps: int) -> None:
        if callbacks.boost.on_round:
            callbacks.boost.on_round(0, 0, steps)

    return started
