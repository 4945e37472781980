"""The router's training queries: each record's run input, reference and tags, and the router's query text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fslm.errors import FslmError
from fslm.finetune.router.labels import keyword_tags
from fslm.finetune.router.recipe import RouterData
from fslm.jsonl import json_lines
from fslm.nodes.prompt import compile_prompt, render_prompt
from fslm.nodes.router.spec import RouterStageSpec
from fslm.spec.models import PipelineSpec
from fslm.spec.run_input import INPUT_VARIABLE, RunInput, input_problem, input_variables


@dataclass(frozen=True)
class Query:
    input: RunInput  # what each expert runs on
    text: str  # what the router reads: its stage's prompt rendered with the input
    reference: Any
    tags: list[str]


@dataclass(frozen=True)
class Queries:
    items: list[Query]
    dropped: int  # records left out: no usable input, or no reference where the reward needs one


def load_queries(data: RouterData, spec: PipelineSpec, stage: str, needs_reference: bool) -> Queries:
    """Every usable record of the data file; FslmError when none is left."""
    router = spec.stages[stage]
    assert isinstance(router, RouterStageSpec)
    template = compile_prompt(router)
    items: list[Query] = []
    records = 0
    for number, record in json_lines(data.path):
        if data.limit is not None and records >= data.limit:
            break
        records += 1
        where = f"{data.path}:{number}"
        if not isinstance(record, dict):
            raise FslmError(f"{where}: a record must be a JSON object, not {type(record).__name__}")
        run_input = _run_input(spec, record)
        if run_input is None or (needs_reference and data.answer not in record):
            continue
        text = render_prompt(stage, router, template, input_variables(run_input))
        items.append(Query(run_input, text, record.get(data.answer), _tags(data, record, text, where)))
    if not items:
        needs = f", the pipeline's inputs ({', '.join(spec.input_fields) or INPUT_VARIABLE})" + (
            f" and the reference field {data.answer!r}" if needs_reference else ""
        )
        raise FslmError(
            f"{data.path}: no training query is left: none of its {records} record(s) holds{needs[1:]}"
        )
    return Queries(items, records - len(items))


def _run_input(spec: PipelineSpec, record: dict[str, Any]) -> RunInput | None:
    if not spec.inputs:
        text = record.get(INPUT_VARIABLE)
        return text if isinstance(text, str) and input_problem(spec, text) is None else None
    run_input = {field: record[field] for field in spec.input_fields if field in record}
    return run_input if input_problem(spec, run_input) is None else None


def _tags(data: RouterData, record: dict[str, Any], text: str, where: str) -> list[str]:
    if data.tags is None:
        return []
    if data.tags.rules is not None:
        return keyword_tags(text, data.tags.rules)
    value = record.get(data.tags.field or "")
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(tag, str) for tag in values):
        raise FslmError(f"{where}: the tag field {data.tags.field!r} must hold text or a list of texts")
    return values
