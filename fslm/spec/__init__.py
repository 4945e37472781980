"""The spec layer: pydantic models of pipeline YAML and their validation (no torch, no LangGraph)."""

from fslm.spec.loader import load_spec
from fslm.spec.models import (
    END,
    Case,
    EdgeSpec,
    GenerationSpec,
    ModelSpec,
    PipelineSpec,
    StageSpecBase,
    first_word_label,
)
from fslm.spec.problems import Problem, SpecError
from fslm.spec.run_input import INPUT_VARIABLE
from fslm.spec.schema import pipeline_json_schema, stage_file_json_schema
from fslm.spec.templates import template_environment
from fslm.spec.topology import downstream, upstream

__all__ = [
    "END",
    "INPUT_VARIABLE",
    "Case",
    "EdgeSpec",
    "GenerationSpec",
    "ModelSpec",
    "PipelineSpec",
    "Problem",
    "SpecError",
    "StageSpecBase",
    "downstream",
    "first_word_label",
    "load_spec",
    "pipeline_json_schema",
    "stage_file_json_schema",
    "template_environment",
    "upstream",
]
