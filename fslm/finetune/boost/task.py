"""The weak stage's task as boosting sees it: its examples (with each one's options when the stage picks one),
their encodings, and how many classes K the SAMME weights count."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from fslm.data_files import read_records
from fslm.errors import FslmError
from fslm.finetune.encode import ChoiceEncoder, Encoded, StageEncoder
from fslm.finetune.recipe import DatasetSource
from fslm.finetune.sources import Example, examples_from_dataset, template_variables
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.nodes.stage.spec import StageSpec
from fslm.spec import PipelineSpec

# Open generation: an answer is right or wrong, so boosting counts two classes (see docs/boost.md).
GENERATION_CLASSES = 2


@dataclass(frozen=True)
class BoostExample:
    example: Example  # the stage's template variables, and the gold target (a choice stage's: the option)
    options: tuple[str, ...] = ()  # a choices stage's options for this example, the gold among them
    gold: int = 0  # the gold option's index
    accepted: tuple[str, ...] = ()  # a text stage's accepted answers when the record lists several

    @property
    def references(self) -> tuple[str, ...]:
        """The answers a written text is scored against (the best one counts)."""
        return self.accepted or (self.example.target,)


def read_examples(source: DatasetSource, spec: PipelineSpec, stage_name: str) -> list[BoostExample]:
    """The examples of `source` for the stage; a choices stage's with their options (its own list, or the
    record's field it reads) and the gold one (the target: its text or its index). A text stage's target may
    list accepted answers (TriviaQA's aliases): the first is the one trained on, any one is right."""
    stage = spec.stages[stage_name]
    variables = template_variables(spec, stage_name)
    records = read_records(source.path, source.split)
    if not isinstance(stage, ChoiceStageSpec):
        examples = examples_from_dataset(source, variables)
        return [
            _text_example(source, number, record, example)
            for number, (record, example) in enumerate(zip(records, examples, strict=True), 1)
        ]
    return [
        _choice_example(source, stage, variables, number, record) for number, record in enumerate(records, 1)
    ]


def _text_example(
    source: DatasetSource, number: int, record: dict[str, Any], example: Example
) -> BoostExample:
    target = record[source.target]
    if not isinstance(target, list):
        return BoostExample(example)
    if not target:
        raise FslmError(f"{source.path}, record {number}: its target {source.target!r} lists no answer")
    accepted = tuple(str(answer) for answer in target)
    return BoostExample(Example(example.variables, accepted[0]), accepted=accepted)


def _choice_example(
    source: DatasetSource, stage: ChoiceStageSpec, variables: list[str], number: int, record: dict[str, Any]
) -> BoostExample:
    where = f"{source.path}, record {number}"
    field = stage.choices_field
    options = record.get(field) if field else stage.choices
    if not isinstance(options, list) or len(options) < 2:
        raise FslmError(f"{where}: {field!r} must be a list of at least two options")
    options = [str(option) for option in options]
    missing = [source.fields.get(v, v) for v in variables if record.get(source.fields.get(v, v)) is None]
    if missing or record.get(source.target) is None:
        raise FslmError(
            f"{where} has no value for {', '.join([*missing, source.target][: len(missing) or 1])}"
        )
    target = record[source.target]
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < len(options):
            raise FslmError(f"{where}: target index {target} is not one of its {len(options)} options")
        gold = target
    elif str(target) in options:
        gold = options.index(str(target))
    else:
        raise FslmError(f"{where}: target {str(target)!r} is not one of its options")
    values = {variable: str(record[source.fields.get(variable, variable)]) for variable in variables}
    return BoostExample(Example(values, options[gold]), tuple(options), gold)


def classes(stage: StageSpec | ChoiceStageSpec, examples: list[BoostExample], given: int | None) -> int:
    """K: the recipe's, else the most common number of options (choices), else GENERATION_CLASSES."""
    if given is not None:
        return given
    if not isinstance(stage, ChoiceStageSpec):
        return GENERATION_CLASSES
    return Counter(len(item.options) for item in examples).most_common(1)[0][0]


def encode_gold(encoder: StageEncoder | ChoiceEncoder, examples: list[BoostExample]) -> list[Encoded]:
    return [encoder.encode(item.example) for item in examples]


def encode_options(encoder: ChoiceEncoder, examples: list[BoostExample]) -> list[list[Encoded]]:
    return [
        [encoder.encode(Example(item.example.variables, option)) for option in item.options]
        for item in examples
    ]
