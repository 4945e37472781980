"""`fslm eval`: score a pipeline (and optionally a second one) on labelled items, each item recorded as a
run."""

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fslm.cli.show import console, escaped, literal, visible
from fslm.errors import FslmError
from fslm.eval.metrics import METRICS


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="score a pipeline's outputs on a labelled data file")
    parser.add_argument("pipeline", type=Path, help="pipeline YAML file")
    parser.add_argument(
        "--data", type=Path, required=True, help="JSONL, CSV or Parquet with inputs and answers"
    )
    parser.add_argument("--metric", required=True, choices=list(METRICS), help="how outputs are scored")
    parser.add_argument("--compare", type=Path, metavar="OTHER_PIPELINE", help="also score this pipeline")
    parser.add_argument("--field", default="input", help="the input field of --data (default: input)")
    parser.add_argument("--answer-field", default="answer", help="the reference field (default: answer)")
    parser.add_argument("--limit", type=int, help="only the first N items")
    parser.add_argument(
        "--output", type=Path, help="per-item results, JSONL (default: PIPELINE.eval.jsonl here)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="most requests in one forward pass (32)")
    parser.add_argument("--store", help="run store file (default: $FSLM_STORE or the per-user store)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fslm.eval.runner import read_eval_items
    from fslm.files import check_output_file, write_jsonl_atomically
    from fslm.pipeline import load_pipeline

    if args.limit is not None and args.limit < 1:
        raise FslmError("--limit must be at least 1")
    items = read_eval_items(args.data, args.field, args.answer_field, args.limit)
    paths = [args.pipeline] + ([args.compare] if args.compare else [])
    output = args.output or Path(f"{args.pipeline.stem}.eval.jsonl")
    check_output_file(output, "output", inputs=[args.data, *paths])
    pipelines = [load_pipeline(path, store=args.store, max_batch_size=args.batch_size) for path in paths]
    err = console(stderr=True)
    reports = []
    try:
        for pipeline in pipelines:
            reports.append(evaluate_with_progress(pipeline, items, args.metric, err))
    finally:
        for pipeline in pipelines:
            pipeline.close()
    write_jsonl_atomically(output, [row for report in reports for row in report.rows()])
    console().print(summary_table(reports))
    err.print(f"wrote {sum(len(report.items) for report in reports)} per-item results to {escaped(output)}")
    return 0


def evaluate_with_progress(pipeline, items: list, metric: str, err: Console):
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
    table = Table(title=f"{reports[0].metric} on {len(reports[0].items)} items")
    table.add_column("pipeline")
    table.add_column("score", justify="right")
    table.add_column("full marks", justify="right")
    table.add_column("seconds", justify="right")
    for report in reports:
        full = sum(1 for item in report.items if item.score >= 1.0)
        table.add_row(
            literal(report.name), f"{report.mean:.3f}", f"{full}/{len(report.items)}", f"{report.seconds:.1f}"
        )
    if len(reports) == 2:
        pairs = list(zip(reports[0].items, reports[1].items, strict=True))
        wins = sum(a.score > b.score for a, b in pairs)
        losses = sum(a.score < b.score for a, b in pairs)
        table.caption = f"item by item, the first pipeline scores higher on {wins} and lower on {losses}"
    return table
