"""The stage a recipe tunes (or an adapter is attached to): a stage of the pipeline that runs on one model."""

from __future__ import annotations

from fslm.errors import FslmError
from fslm.nodes.stage.spec import StageSpec
from fslm.spec import PipelineSpec


def tunable_stage(spec: PipelineSpec, name: str) -> StageSpec:
    """The stage `name` of `spec`. An ensemble stage has no one model to tune, so it is refused."""
    if name not in spec.stages:
        raise FslmError(f"pipeline {spec.path} has no stage '{name}'; its stages: {', '.join(spec.stages)}")
    stage = spec.stages[name]
    if isinstance(stage, StageSpec):
        return stage
    single = [stage_name for stage_name, item in spec.stages.items() if isinstance(item, StageSpec)]
    raise FslmError(
        f"stage '{name}' of {spec.path} is an {stage.kind} stage; only single-model stages (with `model:`) "
        "can be fine-tuned or given an adapter. "
        + (f"Its single-model stages: {', '.join(single)}. " if single else "It has no single-model stage. ")
        + "To tune an ensemble member, tune a single-model stage on that member's model and name the adapter "
        "in the member's `adapter:`."
    )
