"""`fslm runs list|show|diff|replay|export`: read recorded runs, replay one from a stage, export a stage's
pairs."""

import argparse
import json
import sys
import textwrap
from datetime import datetime
from pathlib import Path

from rich.table import Table

from fslm.cli.common_args import add_store_argument
from fslm.cli.show import console, escaped, literal, print_message, readable_input
from fslm.errors import FslmError
from fslm.files import check_output_file, write_jsonl_atomically
from fslm.store import STATUSES, open_store
from fslm.store.inspection import diff_runs, list_runs, run_details, stage_pairs


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("runs", help="list, show, diff, replay and export recorded runs")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    common = argparse.ArgumentParser(add_help=False)
    add_store_argument(common)
    common.add_argument("--json", action="store_true", help="machine-readable output")

    listing = verbs.add_parser("list", parents=[common], help="a table of recorded runs, newest first")
    listing.add_argument("--pipeline", help="only runs of this pipeline (name or file)")
    listing.add_argument("--status", choices=STATUSES, help="only runs with this status")
    listing.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    listing.set_defaults(handler=list_command)

    show = verbs.add_parser("show", parents=[common], help="each stage of a run, in order")
    show.add_argument("run_id", help="run id (a unique prefix is enough)")
    show.add_argument("--prompts", action="store_true", help="also show the prompt each stage received")
    show.set_defaults(handler=show_command)

    diff = verbs.add_parser("diff", parents=[common], help="stage outputs of two runs side by side")
    diff.add_argument("first", help="run id")
    diff.add_argument("second", help="run id")
    diff.set_defaults(handler=diff_command)

    replay = verbs.add_parser("replay", parents=[common], help="re-run a run from a stage, as a new run")
    replay.add_argument("run_id", help="run id (a unique prefix is enough)")
    replay.add_argument(
        "--from", dest="from_stage", required=True, metavar="STAGE", help="first stage to re-run"
    )
    replay.add_argument(
        "--set",
        dest="edits",
        action="append",
        default=[],
        metavar="STAGE=TEXT",
        help="replace a recorded stage message before replaying (repeatable)",
    )
    replay.set_defaults(handler=replay_command)

    export = verbs.add_parser(
        "export", parents=[common], help="(prompt, completion) pairs of one stage as JSONL"
    )
    export.add_argument("run_id", nargs="?", help="one run; or use --pipeline for all its finished runs")
    export.add_argument("--pipeline", help="every finished run of this pipeline (name or file)")
    export.add_argument("--stage", required=True, help="the stage whose messages to export")
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format (jsonl)")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(handler=export_command)


def _when(started: float, short: bool = False) -> str:
    return datetime.fromtimestamp(started).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def _preview(text: str, width: int = 48) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def list_command(args: argparse.Namespace) -> int:
    runs = list_runs(open_store(args.store, read_only=True), args.pipeline, args.status, args.limit)
    if args.json:
        print(json.dumps([run.to_dict() for run in runs], ensure_ascii=False))
        return 0
    table = Table(title=f"{len(runs)} runs")
    for header in ("id", "pipeline", "started", "status", "seconds"):
        table.add_column(header, no_wrap=True, min_width=len(header))
    table.add_column("input", min_width=16)
    for run in runs:
        seconds = f"{run.seconds:.1f}" if run.seconds is not None else ""
        status = run.status + (" ↺" if run.parent_id else "")  # ↺: a replay; `runs show` names its parent
        table.add_row(
            literal(run.run_id),
            literal(run.pipeline_name),
            _when(run.started, short=True),
            literal(status),
            seconds,
            literal(_preview(run.input)),
        )
    console().print(table)
    return 0


def show_command(args: argparse.Namespace) -> int:
    details = run_details(open_store(args.store, read_only=True), args.run_id)
    if args.json:
        print(json.dumps(details.to_dict(), ensure_ascii=False))
        return 0
    record = details.record
    out = console()
    out.print(
        f"[bold]run {escaped(record.run_id)}[/] · {escaped(record.pipeline_name)} "
        f"({escaped(record.pipeline)}) · {escaped(record.status)} · started {_when(record.started)}"
    )
    if record.parent_id:
        out.print(f"replay of run {escaped(record.parent_id)} from stage '{escaped(record.replay_from)}'")
    if record.error:
        out.print(f"[red]error:[/] {escaped(record.error)}")
    if isinstance(details.input, dict):
        out.print(literal("input:\n" + textwrap.indent(readable_input(details.input), "  ")))
    else:
        out.print(literal(f"input: {details.input}"))
    for message in details.messages:
        print_message(out, message, args.prompts)
    return 0


def diff_command(args: argparse.Namespace) -> int:
    a, b, stages = diff_runs(open_store(args.store, read_only=True), args.first, args.second)
    if args.json:
        rows = [{"stage": s.stage, "a": s.a, "b": s.b, "same": s.same} for s in stages]
        print(json.dumps({"a": a.record.run_id, "b": b.record.run_id, "stages": rows}, ensure_ascii=False))
        return 0
    table = Table(title=literal(f"{a.record.run_id} vs {b.record.run_id}"), show_lines=True)
    table.add_column("stage", no_wrap=True)
    table.add_column(literal(a.record.run_id), ratio=1)
    table.add_column(literal(b.record.run_id), ratio=1)
    for stage in stages:
        style = "" if stage.same else "yellow"
        table.add_row(
            literal(stage.stage + ("" if stage.same else " ≠"), style=style),
            literal(stage.a if stage.a is not None else "(did not run)"),
            literal(stage.b if stage.b is not None else "(did not run)"),
        )
    console().print(table)
    return 0


def _parse_edits(edits: list[str]) -> dict[str, str]:
    parsed = {}
    for edit in edits:
        stage, separator, text = edit.partition("=")
        if not separator or not stage:
            raise FslmError(f"--set takes STAGE=TEXT, not '{edit}'")
        parsed[stage] = text
    return parsed


def replay_command(args: argparse.Namespace) -> int:
    from fslm.pipeline import load_pipeline

    edits = _parse_edits(args.edits)
    # Find the parent without creating a store: a mistyped --store must not leave a new file behind.
    recorded = open_store(args.store, read_only=True)
    try:
        parent = run_details(recorded, args.run_id).record
    finally:
        recorded.close()
    if not Path(parent.pipeline).exists():
        raise FslmError(f"run {parent.run_id} was recorded from {parent.pipeline}, which no longer exists")
    pipeline = load_pipeline(parent.pipeline, store=open_store(args.store))
    if args.from_stage not in pipeline.spec.stages:
        raise FslmError(
            f"no stage '{args.from_stage}' in {parent.pipeline}; stages: {', '.join(pipeline.spec.stages)}"
        )
    try:
        result = pipeline.replay(parent.run_id, args.from_stage, edits)
    finally:
        pipeline.close()
    if args.json:
        print(json.dumps({**result.to_dict(), "parent_id": parent.run_id}, ensure_ascii=False))
        return 0
    out = console()
    out.print(
        f"[bold]run {escaped(result.run_id)}[/]: replay of {escaped(parent.run_id)} "
        f"from '{escaped(args.from_stage)}'"
    )
    for message in result.messages:
        print_message(out, message)
    return 0


def export_command(args: argparse.Namespace) -> int:
    if (args.run_id is None) == (args.pipeline is None):
        raise FslmError("give either a run id or --pipeline (not both)")
    if args.output is not None:
        check_output_file(args.output)
    store = open_store(args.store, read_only=True)
    runs = [store.index.find(args.run_id)] if args.run_id else list_runs(store, args.pipeline, "done", None)
    pairs = stage_pairs(store, runs, args.stage)
    if not pairs:
        where = (
            f"run {runs[0].run_id}"
            if args.run_id
            else f"the finished runs of '{args.pipeline}' ({len(runs)})"
        )
        raise FslmError(f"stage '{args.stage}' has no messages in {where}")
    if args.output:
        write_jsonl_atomically(args.output, pairs)
        console(stderr=True).print(f"wrote {len(pairs)} pairs to {escaped(args.output)}")
    else:
        for pair in pairs:
            sys.stdout.write(json.dumps(pair, ensure_ascii=False) + "\n")
    return 0
