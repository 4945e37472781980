"""`fslm` entry point: parse arguments, dispatch, and turn user errors into exit code 2."""

import argparse
import os
import sys

from rich.console import Console

from fslm.cli import (
    ensemble_cmd,
    eval_cmd,
    finetune_cmd,
    graph_cmd,
    models_cmd,
    run_cmd,
    runs_cmd,
    schema_cmd,
    ui_cmd,
    validate_cmd,
)
from fslm.cli.show import console, escaped
from fslm.errors import FslmError
from fslm.store import store_errors, store_problem

USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fslm", description="Pipelines of stacked small language models, written in YAML."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        run_cmd,
        runs_cmd,
        validate_cmd,
        graph_cmd,
        models_cmd,
        schema_cmd,
        ui_cmd,
        finetune_cmd,
        eval_cmd,
        ensemble_cmd,
    ):
        module.register(commands)
    return parser


def report(message: str) -> int:
    console(stderr=True).print(f"[bold red]error:[/] {escaped(message)}", soft_wrap=True)
    return USER_ERROR


def quiet_libraries() -> None:
    """The CLI shows its own progress; keep transformers' bars and warnings out of it (users may override)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def workflow_command(argv: list[str]) -> list[str]:
    """`fslm finetune router R.yaml` is the command `finetune router`: the adapter command keeps its
    positional recipe, and each workflow gets a parser of its own."""
    if len(argv) >= 2 and argv[0] == "finetune" and argv[1] in finetune_cmd.WORKFLOWS:
        return [f"finetune {argv[1]}", *argv[2:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = build_parser().parse_args(workflow_command(sys.argv[1:] if argv is None else argv))
    try:
        return args.handler(args) or 0
    except FslmError as error:
        return report(str(error))
    except store_errors() as error:
        # Raised from inside LangGraph's checkpointer while a run writes: the store is the user's file.
        return report(store_problem(getattr(args, "store", None), error))
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
