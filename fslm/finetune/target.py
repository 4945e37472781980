"""The stage a recipe tunes (or an adapter is attached to): a stage of the pipeline that runs on one model."""

from __future__ import annotations

from fslm.errors import FslmError
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.nodes.stage.spec import StageSpec
from fslm.spec import ModelSpec, PipelineSpec, StageSpecBase


def single_model(stage: StageSpecBase) -> bool:
    """Whether `stage` runs on one model: a plain stage, or a choices stage with `model:`."""
    return isinstance(stage, StageSpec) or (isinstance(stage, ChoiceStageSpec) and stage.model is not None)


def tunable_stage(spec: PipelineSpec, name: str) -> StageSpec | ChoiceStageSpec:
    """The stage `name` of `spec`. An ensemble stage has no one model to tune, so it is refused."""
    if name not in spec.stages:
        raise FslmError(f"pipeline {spec.path} has no stage '{name}'; its stages: {', '.join(spec.stages)}")
    stage = spec.stages[name]
    if isinstance(stage, StageSpec | ChoiceStageSpec) and single_model(stage):
        return stage
    single = [stage_name for stage_name, item in spec.stages.items() if single_model(item)]
    raise FslmError(
        f"stage '{name}' of {spec.path} is {_kind_words(stage)}; only single-model stages (with `model:`) "
        "can be fine-tuned or given an adapter. "
        + (f"Its single-model stages: {', '.join(single)}. " if single else "It has no single-model stage. ")
        + "To tune an ensemble member, tune a single-model stage on that member's model and name the adapter "
        "in the member's `adapter:`."
    )


def tuned_model(spec: PipelineSpec, stage: StageSpec | ChoiceStageSpec) -> ModelSpec:
    """The one model a tunable stage runs on."""
    assert stage.model is not None  # tunable_stage refuses a choices stage without `model:`
    return spec.models[stage.model]


def _kind_words(stage: StageSpecBase) -> str:
    return "an ensemble stage" if stage.kind == "ensemble" else f"a {stage.kind} stage on an ensemble"
