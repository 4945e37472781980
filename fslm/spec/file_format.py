"""Models of the files as users write them: a pipeline file and a reusable stage file.

They differ from the resolved models in `models.py` (a stage may be a `use:` reference, an adapter is a
relative path, `edges` is optional). They drive the unknown-key check and the JSON Schema; values are
validated by the resolved models.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from fslm.nodes.unite.spec import EnsembleSpec
from fslm.spec.models import EdgeSpec, GenerationSpec, ModelSpec, StageSpec, StrictModel

_stage_field = StageSpec.model_fields


class StageFileSpec(StrictModel):
    """A reusable stage, `stages/NAME.yaml`: the keys of a stage; pipelines refer to it with `use: NAME`."""

    model: str | None = Field(None, description=_stage_field["model"].description)
    ensemble: EnsembleSpec | None = Field(None, description=_stage_field["ensemble"].description)
    adapter: str | None = Field(None, description=_stage_field["adapter"].description)
    system: str | None = Field(None, description=_stage_field["system"].description)
    chat_template: bool = Field(True, description=_stage_field["chat_template"].description)
    prompt: str | None = Field(None, description=_stage_field["prompt"].description)
    generation: GenerationSpec = Field(
        default_factory=GenerationSpec,
        description="Decoding settings. Inline keys override a used file's, key by key.",
    )


def _stage_needs_use_or_model_and_prompt(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"required": ["use"]},
        {"required": ["model", "prompt"]},
        {"required": ["ensemble", "prompt"]},
    ]


class StageEntrySpec(StageFileSpec):
    """A stage in a pipeline file: written out in full, or `use: NAME` of a stage file with keys overriding it."""

    model_config = ConfigDict(json_schema_extra=_stage_needs_use_or_model_and_prompt)

    use: str | None = Field(
        None,
        description=(
            "Name of a reusable stage file: `stages/NAME.yaml` next to the pipeline file, else in `../stages`. "
            "A plain name (letters, digits, `_`, `-`, `.`), not a path; a stage file that links outside its "
            "stages directory is refused. Other keys given here override the file's."
        ),
    )


class PipelineFileSpec(StrictModel):
    """A pipeline file: models, stages and (optionally) the wiring between them."""

    name: str | None = Field(None, description="Pipeline name; defaults to the file name without extension.")
    description: str = Field("", description="What the pipeline does.")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="Named model handles.")
    stages: dict[str, StageEntrySpec] = Field(
        min_length=1,
        description=(
            "Stages by name, in run order when there are no edges. Names are Python identifiers (prompt "
            "templates use them), other than `input` and `END`."
        ),
    )
    edges: list[EdgeSpec] | None = Field(
        None,
        description=(
            "The complete wiring. Without it the stages run one after another in file order. With it the run "
            "starts at `entry`, and a stage with no outgoing edge ends its branch."
        ),
    )
    entry: str | None = Field(
        None, description="The stage to start at (with `edges`); defaults to the first stage."
    )
    output: str | None = Field(
        None,
        description="The stage whose text is the run's final output; defaults to the last message of the run.",
    )
