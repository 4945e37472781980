"""`fslm run`: one input (text or a JSON object) with each stage's message shown as it completes, or a JSONL
file batched."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fslm.cli.common_args import add_batch_size_argument, add_store_argument
from fslm.cli.engine_args import add_engine_arguments, engine_options, on_engine
from fslm.cli.runtime_args import add_runtime_arguments, runtime_options
from fslm.cli.show import console, escaped, literal, print_message, visible
from fslm.errors import FslmError
from fslm.files import check_output_file, resolved, write_jsonl_atomically

if TYPE_CHECKING:
    from fslm.spec.run_input import RunInput


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run a pipeline on text, or on every line of a JSONL file")
    parser.add_argument("pipeline", help="pipeline YAML file")
    parser.add_argument("text", nargs="?", help="the input text")
    parser.add_argument(
        "--input-json",
        metavar="JSON",
        help='the input as a JSON object, for a pipeline that declares `inputs:` (e.g. \'{"goal": "…"}\')',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of panels")
    parser.add_argument(
        "--input-file",
        type=Path,
        help=(
            "JSONL file, one input per line: a JSON object (passed whole when the pipeline declares "
            "`inputs:`, else its --field is the text) or a JSON string"
        ),
    )
    parser.add_argument(
        "--field", help="with --input-file, for a pipeline without `inputs:`: the text field (default: input)"
    )
    parser.add_argument("--output", type=Path, help="JSONL file for the results of --input-file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --input-file: continue the last interrupted batch over the same files",
    )
    add_batch_size_argument(parser)
    parser.add_argument(
        "--stream",
        choices=["stages", "tokens"],
        default="stages",
        help="show each stage when it ends (default), or its text as it is generated",
    )
    parser.add_argument("--prompts", action="store_true", help="also show the prompt each stage received")
    add_store_argument(parser)
    add_runtime_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    given = [args.text is not None, args.input_json is not None, args.input_file is not None]
    if sum(given) != 1:
        raise FslmError("give one of: the input text, --input-json JSON, or --input-file FILE")
    if args.field is not None and args.input_file is None:
        raise FslmError("--field picks the text field of each line of --input-file; give --input-file too")
    if args.input_file is not None and args.output is None:
        raise FslmError("--input-file needs --output FILE for the results")
    if args.resume and args.input_file is None:
        raise FslmError(
            "--resume continues a batch: give --input-file and --output as in the interrupted run"
        )
    if args.batch_size < 1:
        raise FslmError("--batch-size must be at least 1")
    runtime = runtime_options(args)
    engine = engine_options(args)
    if engine is not None and args.input_file is None:
        raise FslmError("--engine ray runs many items: give them with --input-file")
    from fslm.cli.run_inputs import file_inputs, one_input, read_input_lines
    from fslm.spec import load_spec

    lines = read_input_lines(args.input_file) if args.input_file is not None else None
    if args.input_file is not None:
        check_output_file(args.output, "output", inputs=[args.input_file])
    spec = load_spec(args.pipeline)
    # Every input is checked against the pipeline here, before the store opens and any model loads.
    if lines is not None:
        inputs = file_inputs(args.input_file, lines, spec, args.field)
    else:
        run_input = one_input(spec, args.text, args.input_json)

    from fslm.pipeline import load_pipeline

    pipeline = load_pipeline(spec, store=args.store, max_batch_size=args.batch_size, **runtime)
    try:
        if args.input_file is not None:
            pipeline = on_engine(pipeline, engine)
            run_file(pipeline, inputs, args.input_file, args.output, args.resume)
        elif args.json:
            print(json.dumps(pipeline.invoke(run_input).to_dict(), ensure_ascii=False))
        else:
            run_one(pipeline, run_input, args.prompts, args.stream == "tokens")
    finally:
        pipeline.close()
    return 0


def run_one(pipeline, run_input: RunInput, show_prompts: bool, tokens: bool) -> None:
    from fslm.pipeline import new_run_id

    out = console()
    run_id = new_run_id()
    out.print(f"[dim]run {run_id} · {escaped(pipeline.spec.name)}[/]")
    streaming = None
    for event in pipeline.stream(run_input, run_id=run_id, tokens=tokens):
        if "token" in event:
            if streaming != event["stage"]:
                out.print(f"[dim]{escaped(event['stage'])} …[/]")
                streaming = event["stage"]
            out.out(visible(event["token"]), end="", highlight=False)
            continue
        if streaming:
            out.out("")
            streaming = None
        print_message(out, event, show_prompts)
    result = pipeline.result(run_id)
    out.print(Panel(literal(result.output), title="[bold green]output[/]", title_align="left"))


def batch_key(pipeline, inputs: list[RunInput], output: Path) -> str:
    """What makes two batch runs the same batch: the pipeline as it is, the inputs as passed (whole objects,
    or the text each line gave), and the output file."""
    parts = [
        pipeline.spec.source_hash,
        hashlib.sha256(json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
        str(resolved(output)),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def run_file(pipeline, inputs: list[RunInput], input_file: Path, output: Path, resume: bool) -> None:
    from fslm.pipeline import new_run_id

    key = batch_key(pipeline, inputs, output)
    index = pipeline.store.index
    batch_id = index.latest_batch(key) if resume else None
    if resume and batch_id is None:
        raise FslmError(
            f"nothing to resume: no earlier batch of {pipeline.spec.path} (as the file is now) over "
            f"{input_file} (as it is now) writing {output} in this store"
        )
    if batch_id is None:
        batch_id = new_run_id()
        index.start_batch(batch_id, key)
    err = console(stderr=True)
    err.print(f"[dim]batch {escaped(batch_id)}" + (" (resumed)" if resume else "") + "[/]")
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task(visible(pipeline.spec.name), total=len(inputs))
            results = pipeline.batch(
                inputs, batch_id=batch_id, resume=resume, on_done=lambda index, result: progress.advance(task)
            )
    except KeyboardInterrupt:
        err.print("interrupted; finished items are recorded. Continue with the same command plus --resume")
        # Worker threads may be mid-generation; the store is consistent, so leave without waiting for them.
        os._exit(130)
    try:
        write_jsonl_atomically(output, [result.to_dict() for result in results])
    except FslmError as error:
        raise FslmError(
            f"{error}. Every item's run is recorded: the same command plus --resume writes the file "
            "without running them again"
        ) from None
    err.print(f"wrote {len(results)} results to {escaped(output)}")
