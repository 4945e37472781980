"""`fslm validate PIPELINE`: check a pipeline file without loading any model."""

import argparse

from fslm.cli.show import console, escaped
from fslm.spec import load_spec


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("validate", help="check a pipeline file; exit 2 listing every problem")
    parser.add_argument("pipeline", help="pipeline YAML file")
    parser.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.pipeline)
    console().print(
        f"[green]ok[/] {escaped(spec.path)}: {len(spec.stages)} stages, {len(spec.models)} models"
    )
    return 0
