"""What `fslm run` runs on: TEXT, `--input-json`, or each line of `--input-file`, checked against the pipeline
before any model loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.jsonl import json_lines
from fslm.spec import INPUT_VARIABLE, PipelineSpec
from fslm.spec.run_input import RunInput, input_problem


def one_input(spec: PipelineSpec, text: str | None, input_json: str | None) -> RunInput:
    """The input given as TEXT or as `--input-json`, checked."""
    if input_json is not None:
        try:
            value = json.loads(input_json)
        except (json.JSONDecodeError, RecursionError) as error:
            raise FslmError(f"--input-json is not valid JSON: {error}") from None
        if not isinstance(value, dict | str):
            raise FslmError(
                f"--input-json takes a JSON object (or a JSON string), not {type(value).__name__}: "
                f"{input_json[:60]}"
            )
    else:
        assert text is not None
        value = text
    problem = input_problem(spec, value)
    if problem is None:
        return value
    if isinstance(value, str) and spec.inputs:
        example = json.dumps(dict.fromkeys(spec.inputs, "…"), ensure_ascii=False)
        problem += f". Give it with --input-json '{example}'"
    raise FslmError(problem)


def read_input_lines(path: Path) -> list[tuple[int, Any]]:
    """Every non-blank line of `path` parsed as JSON, with its line number; the file's own problems first,
    before the pipeline is read."""
    lines = list(json_lines(path, "input file"))
    if not lines:
        raise FslmError(f"{path} holds no inputs")
    return lines


def file_inputs(
    path: Path, lines: list[tuple[int, Any]], spec: PipelineSpec, field: str | None
) -> list[RunInput]:
    """Every line's input: the whole object for a pipeline that declares `inputs:`, else the text of
    `field` (default `input`) or a JSON string. A line that cannot feed the pipeline is an error naming it."""
    if spec.inputs and field is not None:
        raise FslmError(
            "--field picks one text field of each line for a pipeline that reads `{{ input }}`; pipeline "
            f"'{spec.name}' declares `inputs:` ({', '.join(spec.inputs)}), so each line's object is passed "
            "whole. Leave out --field"
        )
    return [_line_input(path, number, record, spec, field or INPUT_VARIABLE) for number, record in lines]


def _line_input(path: Path, number: int, record: object, spec: PipelineSpec, field: str) -> RunInput:
    if spec.inputs:
        problem = input_problem(spec, record)
        if problem is not None:
            raise FslmError(f"{path}:{number}: {problem}")
        assert isinstance(record, dict)
        return record
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get(field), str):
        return record[field]
    fields = ", ".join(record) if isinstance(record, dict) else "none (not an object)"
    raise FslmError(
        f"{path}:{number}: no text field '{field}'; fields there: {fields}. Pick one with --field NAME, or "
        "declare the fields the templates read in the pipeline's `inputs:` to pass each object whole."
    )
