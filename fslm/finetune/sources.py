"""Training examples for one stage, from a data file, from recorded runs, or from a teacher's runs.

An example is the stage's template variables (`input` or a structured input's fields, and upstream stage
outputs by name) and the text the stage should write. Prompts are rendered later, from the variables, with
the stage's own template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.data_files import read_records
from fslm.errors import FslmError
from fslm.eval.answers import gold_option, record_options
from fslm.eval.metrics import score
from fslm.finetune.recipe import DatasetSource, MetricFilter, RunsSource, TeacherSource
from fslm.graph import StageMessage
from fslm.nodes.choices.spec import CHOICE_VARIABLE, ChoiceStageSpec
from fslm.spec import INPUT_VARIABLE, PipelineSpec, load_spec
from fslm.spec.run_input import RunInput, input_variables
from fslm.spec.templates import check_template


@dataclass(frozen=True)
class Example:
    variables: dict[str, Any]
    target: str


def template_variables(spec: PipelineSpec, stage: str) -> list[str]:
    """The variables the stage's templates read, in order of first use: its prompt's, and a choices stage's
    continuation's but the option."""
    item = spec.stages[stage]
    templates = [item.prompt]
    if isinstance(item, ChoiceStageSpec):
        templates.append(item.continuation)
    names = [variable.name for source in templates for variable in check_template(source).free_variables]
    return [name for name in dict.fromkeys(names) if name != CHOICE_VARIABLE]


def data_hash(examples: Iterable[Example]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.variables, example.target], sort_keys=True).encode() + b"\n")
    return digest.hexdigest()


def examples_from_dataset(
    source: DatasetSource, variables: list[str], stage: ChoiceStageSpec | None = None
) -> list[Example]:
    """Examples from a data file; for a choices `stage` a target may also be the gold option's index."""
    records = read_records(source.path, source.split)[: source.limit]
    if not records:
        raise FslmError(f"{source.path} holds no records")
    unused = sorted(set(source.fields) - set(variables))
    if unused:
        raise FslmError(
            f"the field mapping names {', '.join(unused)}, which the stage's template does not use; its "
            f"variables are {', '.join(variables)}"
        )
    wanted = {variable: source.fields.get(variable, variable) for variable in variables}
    available = list(dict.fromkeys(key for record in records for key in record))
    missing = [
        f"'{column}' (for {'the target text' if role is None else f'template variable {role!r}'})"
        for role, column in [*wanted.items(), (None, source.target)]
        if column not in available
    ]
    if missing:
        raise FslmError(
            f"{source.path} has no field {', '.join(missing)}; fields available: {', '.join(available)}. "
            "Map template variables to fields with `fields:` and name the target field with `target:`."
        )
    examples = []
    for number, record in enumerate(records, start=1):
        absent = [column for column in [*wanted.values(), source.target] if record.get(column) is None]
        if absent:
            raise FslmError(f"{source.path}: record {number} has no value for {', '.join(absent)}")
        where = f"{source.path}, record {number}"
        target = record[source.target]
        examples.append(
            Example(
                {variable: str(record[column]) for variable, column in wanted.items()},
                str(target) if stage is None else choice_target(where, stage, source.target, record),
            )
        )
    return examples


def choice_target(where: str, stage: ChoiceStageSpec, target_field: str, record: dict[str, Any]) -> str:
    """The gold option's text. A text target is taken as it is; an integer is an index into the stage's
    options (its literal list, or the record's options field), as `fslm eval` reads answers."""
    target = record[target_field]
    labels, listed = stage.labels, stage.listed_options
    if labels is not None and listed is not None and not isinstance(target, int):
        if str(target) not in labels:
            raise FslmError(
                f"{where}: {target_field} {str(target)!r} is not one of the stage's labels "
                f"({', '.join(map(repr, labels[:8]))}{', …' if len(labels) > 8 else ''})"
            )
        return listed[labels.index(str(target))]
    if not isinstance(target, int) or isinstance(target, bool):
        return str(target)
    if listed is not None:
        options = listed
    else:
        field = stage.choices_field
        assert field is not None
        hint = f"a target given as an index ({target_field!r}) needs the options the stage reads"
        options = record_options(where, field, record, hint=hint)
    return gold_option(where, target_field, target, options)


def stage_examples(
    run_input: RunInput, messages: list[StageMessage], stage: str, variables: list[str]
) -> list[Example]:
    """One example per time `stage` ran in a run's message log, with the upstream texts it saw then."""
    latest = input_variables(run_input)
    examples = []
    for message in messages:
        if message["stage"] == stage and all(variable in latest for variable in variables):
            examples.append(Example({variable: latest[variable] for variable in variables}, message["text"]))
        latest[message["stage"]] = message["text"]
    return examples


def examples_from_runs(
    source: RunsSource, target: PipelineSpec, stage: str, variables: list[str]
) -> list[Example]:
    from fslm.store import open_store
    from fslm.store.inspection import list_runs, run_details

    store = open_store(source.store, read_only=True)
    recorded_stage = source.stage or stage
    pipeline = load_spec(source.pipeline) if source.pipeline else target
    runs = list_runs(store, pipeline=str(pipeline.path), status="done", limit=source.limit)
    references = _references(source.filter) if source.filter else None
    examples = []
    for record in runs:
        details = run_details(store, record.run_id)
        if references is not None and source.filter is not None:
            output = details.outputs.get(pipeline.output or "") or (
                details.messages[-1]["text"] if details.messages else ""
            )
            reference = references.get(record.input)
            if reference is None or score(source.filter.metric, output, reference) < source.filter.min_score:
                continue
        examples.extend(stage_examples(details.input, details.messages, recorded_stage, variables))
    if not examples:
        kept = f"{len(runs)} finished runs of {pipeline.path}"
        raise FslmError(
            f"no examples for stage '{recorded_stage}' from recorded runs: the store holds {kept}"
            + (", and none passed the metric filter" if runs and references is not None else "")
        )
    return examples


def _references(metric_filter: MetricFilter) -> dict[str, str | list[str]]:
    records = read_records(metric_filter.references)
    fields = list(dict.fromkeys(key for record in records for key in record))
    for field in (INPUT_VARIABLE, metric_filter.answer):
        if field not in fields:
            raise FslmError(
                f"{metric_filter.references} has no field '{field}'; fields available: {', '.join(fields)}"
            )
    return {str(record[INPUT_VARIABLE]): _as_reference(record[metric_filter.answer]) for record in records}


def _as_reference(answer: object) -> str | list[str]:
    """A reference answer as `score` takes it: text, or a list of accepted texts (a number becomes text)."""
    return [str(item) for item in answer] if isinstance(answer, list) else str(answer)


def examples_from_teacher(
    source: TeacherSource,
    target: PipelineSpec,
    stage: str,
    variables: list[str],
    on_done: Callable[[int, int], None] | None = None,
    engine: Callable[[Any], Any] | None = None,
) -> list[Example]:
    """Run every input through the teacher (recorded as runs) and learn the teacher's text for `stage`;
    `engine` wraps the teacher's pipeline to run its batch elsewhere (fslm.engines)."""
    inputs = _teacher_inputs(source)
    pipeline = _teacher_pipeline(source, target, stage)
    if engine is not None:
        pipeline = engine(pipeline)
    done = 0

    def advance(index: int, result: object) -> None:
        nonlocal done
        done += 1
        if on_done:
            on_done(done, len(inputs))

    try:
        results = pipeline.batch(inputs, on_done=advance)
    finally:
        pipeline.close()
    examples = [
        example
        for result in results
        for example in stage_examples(result.input, result.messages, stage, variables)
    ]
    if not examples:
        raise FslmError(
            f"the teacher never ran stage '{stage}' on the {len(inputs)} inputs of {source.inputs}"
        )
    return examples


def _teacher_inputs(source: TeacherSource) -> list[str]:
    records = read_records(source.inputs)
    fields = list(dict.fromkeys(key for record in records for key in record))
    if source.field not in fields:
        raise FslmError(
            f"{source.inputs} has no field '{source.field}'; fields available: {', '.join(fields)}"
        )
    inputs = [str(record[source.field]) for record in records if record.get(source.field) is not None]
    if not inputs:
        raise FslmError(f"{source.inputs} holds no inputs")
    return inputs


def _teacher_pipeline(source: TeacherSource, target: PipelineSpec, stage: str):
    from fslm.pipeline import Pipeline, load_pipeline
    from fslm.runtime import ModelRef, Runtime
    from fslm.store import open_store

    if source.pipeline is not None:
        pipeline = load_pipeline(source.pipeline, store=source.store, max_batch_size=source.batch_size)
        if stage not in pipeline.spec.stages:
            pipeline.close()
            raise FslmError(
                f"the teacher pipeline {source.pipeline} has no stage '{stage}'; its stages: "
                f"{', '.join(pipeline.spec.stages)}. A teacher's stages are named as the target pipeline's."
            )
        return pipeline
    assert source.model is not None
    # The target pipeline with every handle on the teacher model and no adapters, recorded under its own name.
    spec = target.model_copy(
        update={
            "name": f"{target.name}@teacher",
            "path": Path(f"{target.path}#teacher={source.model}"),
            "source_hash": hashlib.sha256(f"{target.source_hash}\n{source.model}".encode()).hexdigest(),
            "stages": {
                name: item.model_copy(update={"adapter": None}) for name, item in target.stages.items()
            },
        }
    )
    models = {
        handle: ModelRef(source=source.model, dtype=model.dtype) for handle, model in target.models.items()
    }
    runtime = Runtime(models, max_batch_size=source.batch_size)
    return Pipeline(spec, runtime, open_store(source.store))
