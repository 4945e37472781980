"""pick a cascade stage's thresholds on dev data, for a quality to keep or a budget (docs/cascades.md)

`fslm finetune cascade PIPELINE --stage NAME --data DEV.jsonl --target-quality 0.005` runs each of the
cascade's stages alone on the dev items (batched; recorded runs are reused) and picks the cheapest threshold
whose accuracy stays within 0.005 (half a point) of the last stage's on 90% of bootstrap resamples of the
items (`--assurance`; a cascade of generating stages: its text scored by --metric); `--budget 0.3` picks the
most accurate
one that escalates at most 30% of the items. `--write` writes the thresholds into the pipeline.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from fslm.cli.common_args import add_batch_size_argument, add_store_argument
from fslm.cli.show import console, escaped
from fslm.errors import FslmError
from fslm.eval.metrics import METRICS

if TYPE_CHECKING:
    from fslm.finetune.cascade.workflow import Calibration

SOURCE = "PIPELINE"  # what `fslm finetune cascade` reads: the pipeline itself, not a recipe


def register_workflow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="the pipeline file that holds the cascade stage")
    parser.add_argument("--stage", required=True, help="the cascade stage")
    parser.add_argument("--data", type=Path, required=True, help="dev items: JSONL, CSV or Parquet")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-quality",
        type=float,
        help="the accuracy the cascade may lose against its last stage, as a fraction (0.005: half a point)",
    )
    target.add_argument("--budget", type=float, help="the largest share of items to escalate (0 to 1)")
    parser.add_argument(
        "--assurance",
        type=float,
        help="with --target-quality: the share of bootstrap resamples of the items on which the quality must "
        "hold (default 0.9; 0: on the items themselves only)",
    )
    parser.add_argument("--answer-field", default="answer", help="the gold answer's field (default: answer)")
    parser.add_argument("--choices-field", help="the options' field (default: the one the stages read)")
    parser.add_argument(
        "--metric",
        choices=list(METRICS),
        help="a cascade of generating stages: how a step's text is scored (right = 1; default exact)",
    )
    parser.add_argument("--limit", type=int, help="only the first N items")
    add_batch_size_argument(parser)
    add_store_argument(parser)
    parser.add_argument("--write", action="store_true", help="write the thresholds into the pipeline file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fslm.finetune.cascade.workflow import Target, calibrate, write_thresholds

    if args.target_quality is not None and not 0 <= args.target_quality < 1:
        raise FslmError("--target-quality is a fraction of accuracy, from 0 up to 1 (0.005: half a point)")
    if args.assurance is not None and not 0 <= args.assurance < 1:
        raise FslmError("--assurance is a share of bootstrap resamples, from 0 up to 1 (0.9: nine in ten)")
    if args.budget is not None and args.assurance is not None:
        raise FslmError("--assurance goes with --target-quality; a --budget is met on the items as they are")
    if args.budget is not None and not 0 <= args.budget <= 1:
        raise FslmError("--budget is a share of the items, from 0 to 1")
    if args.limit is not None and args.limit < 1:
        raise FslmError("--limit must be at least 1")
    if args.batch_size < 1:
        raise FslmError("--batch-size must be at least 1")
    err = console(stderr=True)
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err) as progress:
        tasks: dict[str, TaskID] = {}

        def on_done(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(f"stage {step}", total=total)
            progress.update(tasks[step], completed=done)

        found = calibrate(
            args.pipeline,
            args.stage,
            args.data,
            Target(args.target_quality, args.budget, args.assurance),
            answer_field=args.answer_field,
            choices_field=args.choices_field,
            metric=args.metric,
            limit=args.limit,
            store=args.store,
            batch_size=args.batch_size,
            on_done=on_done,
        )
    console().print(result_table(found))
    thresholds = ", ".join(f"{value:g}" for value in found.chosen.thresholds)
    if args.write:
        write_thresholds(args.pipeline, args.stage, found.chosen.thresholds)
        where = f"stage {escaped(args.stage)} of {escaped(args.pipeline)}"
        err.print(f"thresholds [{thresholds}] written to {where}")
    else:
        err.print(f"thresholds: [{thresholds}] (--write writes them into the pipeline)")
    return 0


def result_table(found: Calibration) -> Table:
    """Each stage alone, then the cascade at the thresholds chosen, on the dev items."""
    table = Table(title=f"{escaped(found.stage)} on {found.items} dev items (seconds: measured, per item)")
    for title in ("", "accuracy", "escalated", "seconds"):
        table.add_column(title, justify="right" if title else "left")
    for step, (accuracy, seconds) in zip(found.steps, found.alone, strict=True):
        table.add_row(f"{escaped(step)} alone", f"{accuracy:.4f}", "", f"{seconds:.4f}")
    chosen = found.chosen
    thresholds = ", ".join(f"{value:g}" for value in chosen.thresholds)
    table.add_row(
        f"cascade at [{thresholds}]",
        f"{chosen.accuracy:.4f}",
        f"{chosen.escalated:.1%}",
        f"{chosen.seconds:.4f}",
    )
    return table
