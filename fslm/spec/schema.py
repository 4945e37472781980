"""JSON Schemas of the files users write, generated from the pydantic models (for docs and editors)."""

from __future__ import annotations

from typing import Any

from fslm.spec.file_format import pipeline_file_model, stage_file_model

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file (`pipelines/*.yaml`)."""
    return {"$schema": _DRAFT, **pipeline_file_model().model_json_schema(by_alias=True, mode="validation")}


def stage_file_json_schema() -> dict[str, Any]:
    """The JSON Schema of a reusable stage file (`stages/NAME.yaml`)."""
    return {"$schema": _DRAFT, **stage_file_model().model_json_schema(by_alias=True, mode="validation")}
