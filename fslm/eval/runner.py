"""Running a pipeline over labelled items and scoring its outputs; each item is recorded as a run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.eval.metrics import METRICS, extracted, score
from fslm.finetune.records import read_records
from fslm.spec.run_input import RunInput


@dataclass(frozen=True)
class EvalItem:
    input: RunInput  # text, or a JSON object for a pipeline that declares `inputs:`
    reference: str | list[str]


@dataclass(frozen=True)
class ItemResult:
    run_id: str
    input: RunInput
    reference: str | list[str]
    output: str
    extracted: str
    score: float


@dataclass(frozen=True)
class EvalReport:
    name: str  # the pipeline's name
    pipeline: str  # its file
    metric: str
    items: list[ItemResult]
    seconds: float

    @property
    def mean(self) -> float:
        return sum(item.score for item in self.items) / len(self.items) if self.items else 0.0

    def rows(self) -> list[dict[str, Any]]:
        return [{"pipeline": self.pipeline, "metric": self.metric, **asdict(item)} for item in self.items]


def read_eval_items(
    path: Path, input_field: str, answer_field: str, limit: int | None = None
) -> list[EvalItem]:
    records = read_records(path)
    fields = list(dict.fromkeys(key for record in records for key in record))
    missing = [field for field in (input_field, answer_field) if field not in fields]
    if missing:
        raise FslmError(
            f"{path} has no field {', '.join(repr(field) for field in missing)}; fields available: "
            f"{', '.join(fields) or 'none'}. Choose them with --field and --answer-field."
        )
    items = [
        EvalItem(str(record[input_field]), _reference(record[answer_field]))
        for record in records
        if record.get(input_field) is not None and record.get(answer_field) is not None
    ][:limit]
    if not items:
        raise FslmError(f"{path} holds no items with both '{input_field}' and '{answer_field}'")
    return items


def _reference(value: Any) -> str | list[str]:
    return [str(option) for option in value] if isinstance(value, list) else str(value)


def evaluate(
    pipeline: Any,
    items: Sequence[EvalItem],
    metric: str,
    *,
    batch_id: str | None = None,
    on_done: Callable[[int], None] | None = None,
) -> EvalReport:
    """Run `pipeline` (a `fslm.Pipeline`) on every item in one batch and score each output by `metric`."""
    if metric not in METRICS:
        raise FslmError(f"unknown metric '{metric}'; metrics: {', '.join(METRICS)}")
    started = time.perf_counter()
    results = pipeline.batch(
        [item.input for item in items],
        batch_id=batch_id,
        on_done=lambda index, result: on_done and on_done(index),
    )
    scored = [
        ItemResult(
            result.run_id,
            item.input,
            item.reference,
            result.output,
            extracted(metric, result.output),
            score(metric, result.output, item.reference),
        )
        for item, result in zip(items, results, strict=True)
    ]
    return EvalReport(
        pipeline.spec.name, str(pipeline.spec.path), metric, scored, time.perf_counter() - started
    )
