"""What a `shout` stage records (under `shout` in its message), how `runs show` and the viewer print it, and
how `fslm eval` scores a shout stage that lists its `answers`."""

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from fslm.spec.kind_hooks import ChoiceOutput, Column, MessageRecord, RecordTable
from fslm.spec.models import StageSpecBase


class ShoutRecord(TypedDict):
    written: str  # the model's text, before upper-casing
    raised: int  # how many letters upper-casing changed


def shout_table(record: ShoutRecord) -> RecordTable:
    return RecordTable(
        (Column("written"), Column("letters raised", numeric=True)),
        ((record["written"], str(record["raised"])),),
        heading="shouted",
    )


SHOUT_RECORD = MessageRecord("shout", ShoutRecord, shout_table)


def shout_choice_output(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase]
) -> ChoiceOutput | None:
    answers = getattr(stage, "answers", None)
    if answers is None:
        return None

    def scores(messages: Sequence[Mapping[str, Any]], gold: str) -> dict[str, float] | None:
        text = next((message["text"] for message in reversed(messages) if message["stage"] == name), None)
        return None if text is None else {"acc": float(text.strip() == gold.strip().upper())}

    return ChoiceOutput(name, None, answers, ["acc"], scores)
