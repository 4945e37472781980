"""Calibrating a cascade stage: run each of its steps alone on the dev items (batched, recorded in the run
store, reused when the same step already met the same items), score each step's answer (a pick, or text by
a metric of fslm eval) and confidence, and choose the thresholds for a quality to keep or a share of items
to escalate."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.eval.items import EvalItem, read_choice_items, read_eval_items, read_frame_items
from fslm.eval.metrics import score
from fslm.files import check_output_file, read_text_file, write_text_atomically
from fslm.finetune.cascade.thresholds import (
    ASSURANCE,
    OperatingPoint,
    StepResult,
    alone,
    for_budget,
    for_quality,
    sweep,
)
from fslm.finetune.router.experts import run_experts
from fslm.nodes.cascade.confidence import TOKEN_MEASURES, step_confidence
from fslm.nodes.cascade.scoring import cascade_choice_output
from fslm.nodes.cascade.spec import CascadeStageSpec
from fslm.nodes.choices.scoring import choice_stage_output
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec import PipelineSpec, load_spec

# Text steps are scored by exact match unless --metric says otherwise (as `fslm eval` needs a metric).
DEFAULT_TEXT_METRIC = "exact"


@dataclass(frozen=True)
class Target:
    """Exactly one: keep within `quality` (a fraction, 0.005 = half a point) of the last stage's accuracy on
    a share `assurance` of bootstrap resamples of the items, or escalate at most a share `budget` of them."""

    quality: float | None = None
    budget: float | None = None
    assurance: float | None = None  # None: thresholds.ASSURANCE


@dataclass(frozen=True)
class Calibration:
    stage: str
    steps: list[str]
    items: int
    alone: list[tuple[float, float]]  # each step's accuracy and mean measured seconds, answering alone
    points: list[OperatingPoint]  # every candidate threshold's
    chosen: OperatingPoint


def calibrate(
    pipeline: Path,
    stage: str,
    data: Path,
    target: Target,
    *,
    answer_field: str,
    choices_field: str | None = None,
    metric: str | None = None,
    limit: int | None = None,
    store: str | None = None,
    batch_size: int = 32,
    on_done: Callable[[str, int, int], None] = lambda step, done, total: None,
) -> Calibration:
    spec = load_spec(pipeline)
    cascade = spec.stages.get(stage)
    if not isinstance(cascade, CascadeStageSpec):
        cascades = [name for name, other in spec.stages.items() if isinstance(other, CascadeStageSpec)]
        raise FslmError(
            f"{pipeline} has no cascade stage {stage!r} (its cascade stages: {', '.join(cascades) or 'none'})"
        )
    choice = cascade_choice_output(stage, cascade, spec.stages)
    if choice is not None and metric is not None:
        raise FslmError(
            f"--metric scores written text, but the stages of cascade {stage!r} pick options and are scored "
            "by their pick; leave --metric out"
        )
    if choice is None and choices_field is not None:
        raise FslmError(
            f"--choices-field is for a cascade of choice stages; {stage!r} runs generating stages"
        )
    if choice is not None:
        items = read_choice_items(data, choice, choices_field, answer_field, limit)
    else:
        read = read_frame_items if metric == "frame" else read_eval_items
        items = read(data, None, answer_field, limit, whole=bool(spec.inputs))
    for number, item in enumerate(items, start=1):
        spec.check_input(item.input, f"{data}, item {number}: ")
    steps = cascade.cascade.stages
    answers = run_experts(
        spec,
        steps,
        [item.input for item in items],
        None if store is None else Path(store),
        batch_size,
        lambda step, done: on_done(step, done, len(items)),
    )
    results: list[list[StepResult]] = [[] for _ in items]
    for step, answered in zip(steps, answers, strict=True):
        right = step_scorer(spec, step, metric or DEFAULT_TEXT_METRIC)
        for result, item, message in zip(results, items, answered.messages, strict=True):
            confidence = step_confidence(cascade.cascade.confidence, message)
            result.append(StepResult(confidence, right(message, item), message["seconds"]))
    points = sweep(results, logprob=cascade.cascade.confidence in TOKEN_MEASURES)
    each = [alone(results, index) for index in range(len(steps))]
    if target.quality is not None:
        assurance = ASSURANCE if target.assurance is None else target.assurance
        chosen = for_quality(results, points, target.quality, assurance)
    else:
        assert target.budget is not None
        chosen = for_budget(points, target.budget)
    return Calibration(stage, list(steps), len(items), each, points, chosen)


def step_scorer(spec: PipelineSpec, step: str, metric: str) -> Callable[[Mapping[str, Any], EvalItem], bool]:
    """Whether a step's message answers an item right: a choice stage's pick is the gold option; a
    generating stage's text scores 1 by `metric` against any accepted answer."""
    step_spec = spec.stages[step]
    if isinstance(step_spec, ChoiceStageSpec):
        scored = choice_stage_output(step, step_spec)

        def picked(message: Mapping[str, Any], item: EvalItem) -> bool:
            assert isinstance(item.reference, str)  # a choice item's reference is its gold option
            scores = scored.scores([message], item.reference)
            assert scores is not None  # the message is the step's own
            return scores["acc"] == 1.0

        return picked
    return lambda message, item: score(metric, message["text"], item.reference) == 1.0


def write_thresholds(pipeline: Path, stage: str, thresholds: tuple[float, ...]) -> None:
    """Set `stages.<stage>.cascade.thresholds` in the pipeline file, keeping its comments and formatting."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedSeq

    check_output_file(pipeline, "pipeline")
    yaml = YAML()  # round-trip mode: comments, key order, quoting and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(read_text_file(pipeline, "pipeline"))
    cascade = data["stages"][stage].get("cascade")
    if cascade is None:
        raise FslmError(
            f"stage {stage!r} of {pipeline} takes its cascade from a stage file (use:); write the thresholds "
            f"[{', '.join(map(str, thresholds))}] there"
        )
    values = CommentedSeq(thresholds)
    values.fa.set_flow_style()
    cascade["thresholds"] = values
    text = io.StringIO()
    yaml.dump(data, text)
    # The edited file must still be a valid pipeline before it replaces the old one.
    write_text_atomically(pipeline, text.getvalue(), check=load_spec)
