"""`fslm eval`: score a pipeline on labelled items, each item recorded as a run; compare two evaluations of
the same items (pipelines run now, or results files written before), item by item."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fslm.cli.common_args import add_batch_size_argument, add_store_argument
from fslm.cli.engine_args import add_engine_arguments, engine_options, on_engine
from fslm.cli.runtime_args import add_runtime_arguments, runtime_options
from fslm.cli.show import console, escaped, literal, visible
from fslm.errors import FslmError
from fslm.eval.metrics import METRICS

if TYPE_CHECKING:
    from fslm.eval.items import EvalItem
    from fslm.spec.models import PipelineSpec

PIPELINE_SUFFIXES = (".yaml", ".yml")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="score a pipeline's outputs on a labelled data file")
    parser.add_argument("pipeline", type=Path, nargs="?", help="pipeline YAML file")
    parser.add_argument("--data", type=Path, help="JSONL, CSV or Parquet with inputs and answers")
    parser.add_argument(
        "--metric",
        choices=list(METRICS),
        help="how outputs are scored; not needed when the output stage is a choice stage (acc, acc_norm)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        metavar="OTHER",
        help="a second pipeline to run on the same items, or results files of `fslm eval --output`: with no "
        "PIPELINE, two of them (`--compare A B`); prints paired wins, losses and a sign-test p-value",
    )
    parser.add_argument("--field", help="the input field of --data for a text pipeline (default: input)")
    parser.add_argument("--answer-field", default="answer", help="the reference field (default: answer)")
    parser.add_argument(
        "--choices-field",
        help="for a choice stage: the field of --data holding each item's options (default: the field the "
        "stage reads)",
    )
    parser.add_argument("--limit", type=int, help="only the first N items")
    parser.add_argument(
        "--output", type=Path, help="per-item results, JSONL (default: PIPELINE.eval.jsonl here)"
    )
    add_batch_size_argument(parser)
    add_store_argument(parser)
    add_runtime_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fslm.eval.compare import read_reports
    from fslm.files import check_output_file, write_jsonl_atomically
    from fslm.pipeline import load_pipeline

    if args.limit is not None and args.limit < 1:
        raise FslmError("--limit must be at least 1")
    if args.batch_size < 1:
        raise FslmError("--batch-size must be at least 1")
    runtime = runtime_options(args)
    engine = engine_options(args)
    sources = ([args.pipeline] if args.pipeline else []) + (args.compare or [])
    if not sources:
        raise FslmError("give a pipeline to evaluate, or two results files to compare: --compare A B")
    pipelines = [path for path in sources if path.suffix.lower() in PIPELINE_SUFFIXES]
    if pipelines and args.data is None:
        raise FslmError("give the labelled items to run the pipeline on: --data FILE")
    # Per argument, in order: a results file's reports now, a pipeline's once it has run.
    reports = [read_reports(path) if path not in pipelines else [] for path in sources]
    count = sum(len(found) for found in reports) + len(pipelines)
    if count != (2 if args.compare else 1):
        raise FslmError(
            f"{'--compare compares two evaluations' if args.compare else 'give one pipeline'}; these "
            f"arguments give {count} (a results file gives one per pipeline it holds)"
        )
    output = (args.output or Path(f"{pipelines[0].stem}.eval.jsonl")) if pipelines else None
    if output is not None:
        check_output_file(output, "output", inputs=[args.data, *sources])
    # Every pipeline and its items are checked before any of them runs.
    prepared = {index: prepare(path, args) for index, path in enumerate(sources) if path in pipelines}
    err = console(stderr=True)
    for index, (spec, items) in prepared.items():
        pipeline = on_engine(
            load_pipeline(spec, store=args.store, max_batch_size=args.batch_size, **runtime), engine
        )
        try:
            reports[index] = [evaluate_with_progress(pipeline, items, args.metric, err)]
        finally:
            pipeline.close()
    ordered = [report for found in reports for report in found]
    ran = [reports[index][0] for index in prepared]
    if output is not None:
        write_jsonl_atomically(output, [row for report in ran for row in report.rows()])
    tables = [summary_table(ordered), *frame_tables(ordered), *expert_tables(ordered)]
    console().print(Group(*tables, *([paired_table(*ordered)] if len(ordered) == 2 else [])))
    if output is not None:
        err.print(f"wrote {sum(len(report.items) for report in ran)} per-item results to {escaped(output)}")
    return 0


def prepare(path: Path, args: argparse.Namespace) -> tuple[PipelineSpec, list[EvalItem]]:
    """The pipeline at `path`, validated, and its items from --data, each checked as its input."""
    from fslm.eval.choices import output_choice_stage
    from fslm.eval.items import read_choice_items, read_eval_items, read_frame_items
    from fslm.spec.loader import load_spec

    spec = load_spec(path)
    stage = output_choice_stage(spec)
    if args.metric is None:
        if stage is None:
            raise FslmError(
                f"pipeline '{spec.name}' does not end in a choice stage, so give a --metric: "
                f"{', '.join(METRICS)}"
            )
        items = read_choice_items(args.data, stage, args.choices_field, args.answer_field, args.limit)
    elif args.choices_field is not None:
        raise FslmError("--choices-field is for scoring a choice stage by acc and acc_norm, without --metric")
    else:
        whole = bool(spec.inputs)
        read = read_frame_items if args.metric == "frame" else read_eval_items
        items = read(args.data, args.field, args.answer_field, args.limit, whole=whole)
    for number, item in enumerate(items, start=1):
        spec.check_input(item.input, f"{args.data}, item {number}: ")
    return spec, items


def evaluate_with_progress(pipeline, items: list, metric: str | None, err: Console):
    from fslm.eval.runner import evaluate
    from fslm.pipeline import new_run_id

    batch_id = new_run_id()
    err.print(
        f"[dim]{escaped(pipeline.spec.name)}: batch {batch_id} (`fslm runs list` shows each item's run)[/]"
    )
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(visible(pipeline.spec.name), total=len(items))
        return evaluate(
            pipeline, items, metric, batch_id=batch_id, on_done=lambda index: progress.advance(task)
        )


def summary_table(reports: list) -> Table:
    """Each report's mean score by each of its metrics, with a 95% interval (Wilson's for 0/1 scores, else
    the normal approximation)."""
    from fslm.eval.stats import interval95

    metrics = list(dict.fromkeys(metric for report in reports for metric in report.metrics))
    table = Table(title=f"{', '.join(metrics)} on {len(reports[0].items)} items")
    table.add_column("pipeline")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("95% interval", justify="right")
    table.add_column("seconds", justify="right")
    for report in reports:
        for metric in report.metrics:
            bounds = interval95([item.scores[metric] for item in report.items])
            seconds = "" if report.seconds is None else f"{report.seconds:.1f}"
            table.add_row(
                literal(report.name),
                metric,
                f"{report.mean_of(metric):.3f}",
                f"{bounds.low:.3f}–{bounds.high:.3f} ({bounds.method})",
                seconds,
            )
    return table


def frame_tables(reports: list) -> list[Table]:
    """For each report scored by `frame`: slot precision, recall and F1 over all slots (micro-averaged, with a
    bootstrap 95% interval on F1) and per slot name."""
    from fslm.eval.frames import field_counts, slot_f1_interval

    tables = []
    for report in reports:
        if report.metric != "frame":
            continue
        pairs = [(item.output, str(item.reference)) for item in report.items]
        low, high = slot_f1_interval(pairs)
        table = Table(
            title=f"{escaped(report.name)}: slots (all: F1 95% interval {low:.3f}–{high:.3f}, bootstrap)"
        )
        for column in ("slot", "in references", "precision", "recall", "F1"):
            table.add_column(column, justify="left" if column == "slot" else "right")
        for row in field_counts(pairs):
            table.add_row(
                literal(row.name),
                str(row.true_positives + row.false_negatives),
                f"{row.precision:.3f}",
                f"{row.recall:.3f}",
                f"{row.f1:.3f}",
            )
        tables.append(table)
    return tables


def expert_tables(reports: list) -> list[Table]:
    """For each report whose runs went through a router stage: its score by the expert the router chose."""
    from fslm.eval.routing import by_chosen_expert

    tables = []
    for report in reports:
        rows = by_chosen_expert(report)
        if not rows:
            continue
        table = Table(title=f"{escaped(report.name)}: score by the expert each router stage chose")
        for column in ("router", "expert", "items", "metric", "score", "95% interval"):
            table.add_column(
                column, justify="right" if column in ("items", "score", "95% interval") else "left"
            )
        for row in rows:
            table.add_row(
                literal(row.router),
                literal(row.expert),
                str(row.items),
                row.metric,
                f"{row.mean:.3f}",
                f"{row.interval.low:.3f}–{row.interval.high:.3f} ({row.interval.method})",
            )
        tables.append(table)
    return tables


def paired_table(first, second) -> Table:
    """Item by item: where the first scores higher (wins) and lower (losses), and the exact two-sided sign
    test on wins against losses (McNemar's exact test when scores are 0 or 1)."""
    from fslm.eval.compare import compare

    table = Table(title=f"{escaped(first.name)} against {escaped(second.name)}, item by item")
    for column in ("metric", "first", "second", "wins", "losses", "ties", "p (exact sign test)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in compare(first, second):
        table.add_row(
            row.metric,
            f"{row.first:.3f}",
            f"{row.second:.3f}",
            str(row.paired.wins),
            str(row.paired.losses),
            str(row.paired.ties),
            f"{row.paired.p_value:.3g}",
        )
    return table
