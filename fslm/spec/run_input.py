"""A run's input: text, or a JSON object whose fields prompt templates read; checked against a pipeline before
any model loads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fslm.errors import FslmError
from fslm.spec.reporting import listing

if TYPE_CHECKING:
    from fslm.spec.models import PipelineSpec

INPUT_VARIABLE = "input"  # the run's input text (or a structured input's `input` field) in prompt templates
# A run's input: a string (templates read it as `{{ input }}`) or a JSON object whose fields templates read.
RunInput = str | dict[str, Any]


def input_variables(value: RunInput) -> dict[str, Any]:
    """The template variables a run's input gives: `input` for text, a structured input's own fields."""
    return dict(value) if isinstance(value, dict) else {INPUT_VARIABLE: value}


def input_problem(spec: PipelineSpec, value: object) -> str | None:
    """Why `value` cannot be the input of a run of `spec`, or None when it can."""
    if isinstance(value, str):
        if spec.inputs:
            return (
                f"pipeline '{spec.name}' reads the fields {listing(spec.inputs)} of a structured input (its "
                "`inputs:`), so its input must be a JSON object with them, not text"
            )
        return None
    if not isinstance(value, dict):
        return (
            "a run's input is text or a JSON object (field names mapped to values), "
            f"not {type(value).__name__}"
        )
    names = [key for key in value if not isinstance(key, str)]
    if names:
        return f"the input's field names must be text, not {names[0]!r}"
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        return (
            f"the input's values must be JSON data (text, numbers, true/false, null, lists, objects): {error}"
        )
    missing = [field for field in spec.input_fields if field not in value]
    if not missing:
        return None
    field = missing[0]
    why = (
        "declared in its `inputs:`"
        if field in spec.inputs
        else "a prompt template reads `{{ input }}`"
        + ("" if spec.inputs else " and the pipeline declares no `inputs:` fields")
    )
    return (
        f"the input has no field '{field}', which pipeline '{spec.name}' reads ({why}); "
        f"the input's fields: {listing(list(value))}"
    )


def check_input(spec: PipelineSpec, value: object, where: str = "") -> None:
    """Raise FslmError when `value` cannot be the input of a run of `spec`; `where` names the item."""
    problem = input_problem(spec, value)
    if problem is not None:
        raise FslmError(f"{where}{problem}")


def input_text(value: RunInput) -> str:
    """The input as one readable text: itself for a string, JSON for a structured input."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
