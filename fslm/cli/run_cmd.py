"""`fslm run`: one input with each stage's message shown as it completes, or a JSONL file batched."""

import argparse
import hashlib
import json
import os
from pathlib import Path

from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fslm.cli.show import console, escaped, literal, print_message, visible
from fslm.errors import FslmError
from fslm.files import check_output_file, resolved, write_jsonl_atomically
from fslm.jsonl import json_lines


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run a pipeline on text, or on every line of a JSONL file")
    parser.add_argument("pipeline", help="pipeline YAML file")
    parser.add_argument("text", nargs="?", help="the input text")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of panels")
    parser.add_argument("--input-file", type=Path, help="JSONL file, one object per line with an input field")
    parser.add_argument("--field", default="input", help="the input field of --input-file (default: input)")
    parser.add_argument("--output", type=Path, help="JSONL file for the results of --input-file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --input-file: continue the last interrupted batch over the same files",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="most requests in one forward pass (32)")
    parser.add_argument(
        "--stream",
        choices=["stages", "tokens"],
        default="stages",
        help="show each stage when it ends (default), or its text as it is generated",
    )
    parser.add_argument("--prompts", action="store_true", help="also show the prompt each stage received")
    parser.add_argument("--store", help="run store file (default: $FSLM_STORE or the per-user store)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input_file is None):
        raise FslmError("give either the input text or --input-file FILE (not both)")
    if args.input_file is not None and args.output is None:
        raise FslmError("--input-file needs --output FILE for the results")
    if args.resume and args.input_file is None:
        raise FslmError(
            "--resume continues a batch: give --input-file and --output as in the interrupted run"
        )
    if args.batch_size < 1:
        raise FslmError("--batch-size must be at least 1")
    texts = read_inputs(args.input_file, args.field) if args.input_file else None
    if args.input_file is not None:
        check_output_file(args.output, "output", inputs=[args.input_file])

    from fslm.pipeline import load_pipeline

    pipeline = load_pipeline(args.pipeline, store=args.store, max_batch_size=args.batch_size)
    try:
        if texts is not None:
            run_file(pipeline, texts, args.input_file, args.output, args.resume)
        elif args.json:
            print(json.dumps(pipeline.invoke(args.text).to_dict(), ensure_ascii=False))
        else:
            run_one(pipeline, args.text, args.prompts, args.stream == "tokens")
    finally:
        pipeline.close()
    return 0


def run_one(pipeline, text: str, show_prompts: bool, tokens: bool) -> None:
    from fslm.pipeline import new_run_id

    out = console()
    run_id = new_run_id()
    out.print(f"[dim]run {run_id} · {escaped(pipeline.spec.name)}[/]")
    streaming = None
    for event in pipeline.stream(text, run_id=run_id, tokens=tokens):
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


def read_inputs(path: Path, field: str) -> list[str]:
    texts = []
    for number, record in json_lines(path, "input file"):
        if isinstance(record, str):
            texts.append(record)
        elif isinstance(record, dict) and isinstance(record.get(field), str):
            texts.append(record[field])
        else:
            fields = ", ".join(record) if isinstance(record, dict) else "none (not an object)"
            raise FslmError(
                f"{path}:{number}: no text field '{field}'; fields there: {fields}. "
                "Pick one with --field NAME."
            )
    if not texts:
        raise FslmError(f"{path} holds no inputs")
    return texts


def batch_key(pipeline, input_file: Path, output: Path) -> str:
    """What makes two batch runs the same batch: the pipeline as it is, the inputs, and the output file."""
    parts = [
        pipeline.spec.source_hash,
        hashlib.sha256(input_file.read_bytes()).hexdigest(),
        str(resolved(output)),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def run_file(pipeline, texts: list[str], input_file: Path, output: Path, resume: bool) -> None:
    from fslm.pipeline import new_run_id

    key = batch_key(pipeline, input_file, output)
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
            task = progress.add_task(visible(pipeline.spec.name), total=len(texts))
            results = pipeline.batch(
                texts, batch_id=batch_id, resume=resume, on_done=lambda index, result: progress.advance(task)
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
