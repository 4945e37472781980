"""Running a pipeline over labelled items and scoring its outputs; each item is recorded as a run.

A generating pipeline is scored by one metric (`fslm.eval.metrics`). A pipeline whose output stage picks one
of a set of options (a choice stage, a router over choice stages) is scored as its kind says
(`fslm.eval.choices`): `acc` and `acc_norm`, read from that stage's record. Each item also keeps the stage
every routing stage of its run chose, so that scores can be broken down by the expert chosen
(`fslm.eval.routing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fslm.errors import FslmError
from fslm.eval.choices import output_choice_stage
from fslm.eval.frames import frame_scores
from fslm.eval.items import EvalItem
from fslm.eval.metrics import METRICS, extracted, score
from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.kinds import message_records
from fslm.spec.run_input import RunInput

FRAME_METRICS = ["frame", "intent"]


@dataclass(frozen=True)
class ItemResult:
    run_id: str
    input: RunInput
    reference: str | list[str]
    output: str
    extracted: str
    score: float  # by the report's first metric
    scores: dict[str, float]  # by each of the report's metrics
    routed: dict[str, str] = field(default_factory=dict)  # router stage -> the expert it chose in this run


@dataclass(frozen=True)
class EvalReport:
    name: str  # the pipeline's name
    pipeline: str  # its file
    metrics: list[str]  # one for a generating pipeline; acc and acc_norm for a choice stage
    items: list[ItemResult]
    seconds: float | None  # None for a report read back from a results file

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def mean(self) -> float:
        return self.mean_of(self.metric)

    def mean_of(self, metric: str) -> float:
        return sum(item.scores[metric] for item in self.items) / len(self.items) if self.items else 0.0

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"pipeline": self.pipeline, "name": self.name, "metric": self.metric, **asdict(item)}
            for item in self.items
        ]


def evaluate(
    pipeline: Any,
    items: Sequence[EvalItem],
    metric: str | None,
    *,
    batch_id: str | None = None,
    on_done: Callable[[int], None] | None = None,
) -> EvalReport:
    """Run `pipeline` (a `fslm.Pipeline`) on every item in one batch and score each output by `metric`; with
    `metric` None, the pipeline's output stage must be a choice stage, scored by acc and acc_norm."""
    stage = output_choice_stage(pipeline.spec)
    if metric is None and stage is None:
        raise FslmError(
            f"pipeline '{pipeline.spec.name}' does not end in a choice stage, so it needs a --metric: "
            f"{', '.join(METRICS)}"
        )
    if metric is not None and metric not in METRICS:
        raise FslmError(f"unknown metric '{metric}'; metrics: {', '.join(METRICS)}")
    started = time.perf_counter()
    results = pipeline.batch(
        [item.input for item in items],
        batch_id=batch_id,
        on_done=lambda index, result: on_done and on_done(index),
    )
    scored = [_scored(result, item, metric, stage) for item, result in zip(items, results, strict=True)]
    return EvalReport(
        pipeline.spec.name,
        str(pipeline.spec.path),
        metric_names(metric, stage),
        scored,
        time.perf_counter() - started,
    )


def metric_names(metric: str | None, stage: ChoiceOutput | None = None) -> list[str]:
    """What a report scores by: the metric; for a frame, `frame` and `intent`; for a stage that picks, what
    its kind scores it by (a choice stage: acc and acc_norm, or acc alone when it searches best-first)."""
    if metric is None:
        assert stage is not None
        return list(stage.metrics)
    return FRAME_METRICS if metric == "frame" else [metric]


def _scored(result: Any, item: EvalItem, metric: str | None, stage: ChoiceOutput | None) -> ItemResult:
    routed = routed_experts(result.messages)
    if metric is not None:
        if metric == "frame":
            assert isinstance(item.reference, str)  # read_frame_items makes one reference frame per item
            scores = frame_scores(result.output, item.reference)
        else:
            scores = {metric: score(metric, result.output, item.reference)}
        return ItemResult(
            result.run_id,
            item.input,
            item.reference,
            result.output,
            extracted(metric, result.output),
            scores[metric],
            scores,
            routed,
        )
    assert stage is not None and isinstance(item.reference, str)  # a choice item's reference is its gold
    picked = stage.scores(result.messages, item.reference)
    if picked is None:
        raise FslmError(f"run {result.run_id} ended without running the choice stage {stage.stage!r}")
    return ItemResult(
        result.run_id,
        item.input,
        item.reference,
        result.output,
        result.output,
        picked[stage.metrics[0]],
        picked,
        routed,
    )


def routed_experts(messages: Sequence[dict]) -> dict[str, str]:
    """The stage each routing stage of a run (a router) handed it to, by the routing kind's record (its last
    choice, for a stage that ran more than once)."""
    routed = {}
    for message in messages:
        for key, record in message_records().items():
            if record.routed_to is not None and key in message:
                routed[message["stage"]] = record.routed_to(message[key])
    return routed
