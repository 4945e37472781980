"""`fslm schema`: the JSON Schema of pipeline (or stage) files, for editor completion."""

import argparse
import json

from fslm.spec import pipeline_json_schema
from fslm.spec.schema import stage_file_json_schema


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("schema", help="print the JSON Schema of pipeline files (for editors)")
    parser.add_argument("--stage", action="store_true", help="the schema of stages/NAME.yaml files instead")
    parser.set_defaults(handler=schema)


def schema(args: argparse.Namespace) -> int:
    print(json.dumps(stage_file_json_schema() if args.stage else pipeline_json_schema(), indent=2))
    return 0
