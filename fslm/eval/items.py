"""The labelled items `fslm eval` reads from a data file: each a run's input and its reference.

A pipeline that reads text (`{{ input }}`) gets one field of each record as its input (`--field`). A pipeline
that declares `inputs:` gets each record whole, as a structured input, less its answer field, so its
templates read the record's fields by their own names.

For a pipeline whose output stage is a choice stage, the reference is the gold option's text. The record's
answer is that text, or the option's index (a JSON integer, from 0). The options are the record's
`--choices-field` (default: the field the stage reads, `choices: "{{ NAME }}"`), handed to the pipeline under
the stage's own name `NAME`; a stage that lists its own options reads none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.data_files import read_records
from fslm.errors import FslmError
from fslm.eval.answers import gold_option, record_options
from fslm.eval.frames import INTENT, frame_text
from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.run_input import RunInput


@dataclass(frozen=True)
class EvalItem:
    input: RunInput  # text, or a JSON object for a pipeline that declares `inputs:`
    reference: str | list[str]  # accepted answers; for a choice stage, the gold option's text


def read_eval_items(
    path: Path, input_field: str | None, answer_field: str, limit: int | None = None, *, whole: bool = False
) -> list[EvalItem]:
    """Items for a generating pipeline: `input_field` of each record as text (default `input`), or with
    `whole` each record less its answer field."""
    return read_eval_items_from(path, read_records(path), input_field, answer_field, limit, whole=whole)


def read_eval_items_from(
    path: Path,
    records: list[dict[str, Any]],
    input_field: str | None,
    answer_field: str,
    limit: int | None = None,
    *,
    whole: bool = False,
) -> list[EvalItem]:
    fields = list(dict.fromkeys(key for record in records for key in record))
    if whole and input_field is not None:
        raise FslmError(
            "the pipeline declares `inputs:`, so each item is passed whole as a structured input and "
            "--field does not apply; leave it out"
        )
    input_field = None if whole else input_field or "input"
    missing = [field for field in (input_field, answer_field) if field is not None and field not in fields]
    if missing:
        raise FslmError(
            f"{path} has no field {', '.join(repr(field) for field in missing)}; fields available: "
            f"{', '.join(fields) or 'none'}. Choose them with --field and --answer-field."
        )
    items = [
        EvalItem(_input(record, input_field, answer_field), _reference(record[answer_field]))
        for record in records
        if (input_field is None or record.get(input_field) is not None)
        and record.get(answer_field) is not None
    ][:limit]
    if not items:
        raise FslmError(f"{path} holds no items with both '{input_field or 'fields'}' and '{answer_field}'")
    return items


def read_frame_items(
    path: Path, input_field: str | None, answer_field: str, limit: int | None = None, *, whole: bool = False
) -> list[EvalItem]:
    """Items for `--metric frame`. A record's reference frame is its answer field's text when it has one, else
    its `intent` and `slots` fields (a list of `{slot, value}`, as SNIPS and JointBERT's data have them),
    which are then not part of the input."""
    records = read_records(path)
    if records and all(answer_field not in record for record in records):
        records = [
            _with_frame(path, number, record, answer_field) for number, record in enumerate(records, 1)
        ]
    return read_eval_items_from(path, records, input_field, answer_field, limit, whole=whole)


def _with_frame(path: Path, number: int, record: dict[str, Any], answer_field: str) -> dict[str, Any]:
    where = f"{path}, record {number}"
    if INTENT not in record or "slots" not in record:
        raise FslmError(
            f"{where} has no answer field {answer_field!r}, nor `intent` and `slots` fields to make the "
            f"reference frame from; its fields: {', '.join(record) or 'none'}"
        )
    slots = record["slots"]
    if not isinstance(slots, list) or not all(
        isinstance(slot, dict) and isinstance(slot.get("slot"), str) and isinstance(slot.get("value"), str)
        for slot in slots
    ):
        raise FslmError(f'{where}: `slots` must be a list of {{"slot": name, "value": text}} objects')
    rest = {key: value for key, value in record.items() if key not in (INTENT, "slots")}
    pairs = [(slot["slot"], slot["value"]) for slot in slots]
    return {**rest, answer_field: frame_text(str(record[INTENT]), pairs)}


def _input(record: dict[str, Any], input_field: str | None, answer_field: str) -> RunInput:
    if input_field is None:
        return {key: value for key, value in record.items() if key != answer_field}
    return str(record[input_field])


def _reference(value: Any) -> str | list[str]:
    return [str(option) for option in value] if isinstance(value, list) else str(value)


def read_choice_items(
    path: Path, stage: ChoiceOutput, choices_field: str | None, answer_field: str, limit: int | None = None
) -> list[EvalItem]:
    """Items for a pipeline whose output stage is the choice stage `stage`; an item whose options or answer
    are unusable is an error that names it."""
    own_field = stage.choices_field
    if own_field is None and choices_field is not None:
        raise FslmError(
            f"stage {stage.stage!r} lists its own options ({', '.join(map(repr, stage.answers))}), "
            "so it reads no --choices-field; leave it out"
        )
    field = choices_field or own_field
    items = []
    for number, record in enumerate(read_records(path)[:limit], start=1):
        where = f"{path}, item {number}"
        if record.get(answer_field) is None:
            raise FslmError(f"{where} has no answer field {answer_field!r}; name it with --answer-field")
        fields = {key: value for key, value in record.items() if key != answer_field}
        if field is None:
            # A verbalizer's answers are its labels, which the stage writes.
            options = list(stage.answers)
        else:
            options = record_options(where, field, record, hint="name it with --choices-field")
            if own_field is not None and own_field != field:
                fields[own_field] = fields.pop(field)
        items.append(EvalItem(fields, gold_option(where, answer_field, record[answer_field], options)))
    if not items:
        raise FslmError(f"{path} holds no items")
    return items
