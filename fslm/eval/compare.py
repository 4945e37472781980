"""Comparing two evaluations of the same items: reports read back from `fslm eval --output` files, and the
paired comparison, metric by metric, that `fslm eval --compare` prints."""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from fslm.errors import FslmError
from fslm.eval.runner import EvalReport, ItemResult
from fslm.eval.stats import Paired, paired
from fslm.files import read_text_file

_ITEM_FIELDS = [field.name for field in fields(ItemResult)]
# Fields a row may lack: files written before they were added.
_OPTIONAL_FIELDS = [field.name for field in fields(ItemResult) if field.default_factory is not MISSING]


def read_reports(path: Path) -> list[EvalReport]:
    """The reports in a results file written by `fslm eval --output`: one per pipeline it holds."""
    reports: dict[str, EvalReport] = {}
    for number, line in enumerate(read_text_file(path, "results file").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise FslmError(f"{where} is not JSON ({error.msg}); give a file written by `fslm eval --output`")
        missing = [
            key
            for key in ("pipeline", "name", *_ITEM_FIELDS)
            if key not in _OPTIONAL_FIELDS and (not isinstance(row, dict) or key not in row)
        ]
        if missing:
            raise FslmError(
                f"{where} has no {', '.join(missing)}: it is not a row written by `fslm eval --output`"
            )
        if not isinstance(row["scores"], dict) or not row["scores"]:
            raise FslmError(f"{where}: its 'scores' is not an object of metric names and scores")
        report = reports.setdefault(
            row["pipeline"], EvalReport(row["name"], row["pipeline"], list(row["scores"]), [], None)
        )
        if list(row["scores"]) != report.metrics:
            raise FslmError(
                f"{where} has the metrics {', '.join(row['scores'])}, not {', '.join(report.metrics)}"
            )
        if not isinstance(row.get("routed", {}), dict):
            raise FslmError(f"{where}: its 'routed' is not an object of router stages and chosen experts")
        report.items.append(ItemResult(**{key: row[key] for key in _ITEM_FIELDS if key in row}))
    if not reports:
        raise FslmError(f"results file {path} holds no rows")
    return list(reports.values())


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    first: float  # the first report's mean
    second: float
    paired: Paired


def compare(first: EvalReport, second: EvalReport) -> list[MetricComparison]:
    """Item by item, for every metric both reports have. They must hold the same items, in the same order."""
    if len(first.items) != len(second.items):
        raise FslmError(
            f"'{first.name}' was scored on {len(first.items)} items and '{second.name}' on "
            f"{len(second.items)}; a paired comparison needs the same items"
        )
    for number, (a, b) in enumerate(zip(first.items, second.items, strict=True), start=1):
        if a.reference != b.reference:
            raise FslmError(
                f"item {number} has the reference {a.reference!r} for '{first.name}' and {b.reference!r} "
                f"for '{second.name}': these are not the same items (same --data and --limit?)"
            )
    metrics = [metric for metric in first.metrics if metric in second.metrics]
    if not metrics:
        raise FslmError(
            f"'{first.name}' was scored by {', '.join(first.metrics)} and '{second.name}' by "
            f"{', '.join(second.metrics)}: no metric to compare them by"
        )
    return [
        MetricComparison(
            metric,
            first.mean_of(metric),
            second.mean_of(metric),
            paired(
                [item.scores[metric] for item in first.items], [item.scores[metric] for item in second.items]
            ),
        )
        for metric in metrics
    ]
