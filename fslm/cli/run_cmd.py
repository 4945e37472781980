"""`fslm run`: one input with each stage's message shown as it completes, or a JSONL file batched."""

import argparse
import json
import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from fslm.cli.show import print_message
from fslm.errors import FslmError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run a pipeline on text, or on every line of a JSONL file")
    parser.add_argument("pipeline", help="pipeline YAML file")
    parser.add_argument("text", nargs="?", help="the input text")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of panels")
    parser.add_argument("--input-file", type=Path, help="JSONL file, one object per line with an input field")
    parser.add_argument("--field", default="input", help="the input field of --input-file (default: input)")
    parser.add_argument("--output", type=Path, help="JSONL file for the results of --input-file")
    parser.add_argument("--prompts", action="store_true", help="also show the prompt each stage received")
    parser.add_argument("--store", help="run store file (default: $FSLM_STORE or the per-user store)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input_file is None):
        raise FslmError("give either the input text or --input-file FILE (not both)")
    if args.input_file is not None and args.output is None:
        raise FslmError("--input-file needs --output FILE for the results")
    texts = read_inputs(args.input_file, args.field) if args.input_file else None

    from fslm.pipeline import load_pipeline

    pipeline = load_pipeline(args.pipeline, store=args.store)
    try:
        if texts is not None:
            run_file(pipeline, texts, args.output)
        elif args.json:
            print(json.dumps(pipeline.invoke(args.text).to_dict(), ensure_ascii=False))
        else:
            run_one(pipeline, args.text, args.prompts)
    finally:
        pipeline.close()
    return 0


def run_one(pipeline, text: str, show_prompts: bool) -> None:
    from fslm.pipeline import new_run_id

    console = Console(highlight=False)
    run_id = new_run_id()
    console.print(f"[dim]run {run_id} · {pipeline.spec.name}[/]")
    for message in pipeline.stream(text, run_id=run_id):
        print_message(console, message, show_prompts)
    result = pipeline.result(run_id)
    console.print(Panel(Text(result.output), title="[bold green]output[/]", title_align="left"))


def read_inputs(path: Path, field: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise FslmError(f"cannot read the input file {path}: {error.strerror}") from error
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise FslmError(f"{path}:{number}: not valid JSON ({error.msg})") from error
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


def run_file(pipeline, texts: list[str], output: Path) -> None:
    results = [None] * len(texts)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(pipeline.spec.name, total=len(texts))

        def done(index: int, result) -> None:
            results[index] = result
            progress.advance(task)

        pipeline.batch(texts, on_done=done)
    write_jsonl_atomically(output, [result.to_dict() for result in results])
    Console(stderr=True, highlight=False).print(f"wrote {len(results)} results to {output}")


def write_jsonl_atomically(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(temporary, path)
