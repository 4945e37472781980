"""Models of the files as users write them: a pipeline file and a reusable stage file.

They differ from the resolved models in `models.py` (a stage may be a `use:` reference, an adapter is a
relative path, `edges` is optional). They drive the unknown-key check and the JSON Schema; values are
validated by the resolved models.

The stage models are made from the registered node kinds (`fslm.spec.kinds`): their keys are the common
stage keys plus every kind's own, each optional here, since a stage holds the keys of one kind only.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Optional

from pydantic import ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from fslm.spec.kinds import node_kinds
from fslm.spec.models import EdgeSpec, GenerationSpec, ModelSpec, StageSpecBase, StrictModel


def _optional(field: FieldInfo) -> Any:
    return Field(None, description=field.description)


def _stage_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for kind in node_kinds().values():
        for name, field in kind.spec.model_fields.items():
            if name not in StageSpecBase.model_fields:
                fields.setdefault(name, (Optional[field.annotation], _optional(field)))  # noqa: UP045
    base = StageSpecBase.model_fields
    fields["system"] = (base["system"].annotation, base["system"])
    fields["chat_template"] = (bool, base["chat_template"])
    fields["prompt"] = (str | None, _optional(base["prompt"]))
    fields["generation"] = (
        GenerationSpec,
        Field(
            default_factory=GenerationSpec,
            description="Decoding settings. Inline keys override a used file's, key by key.",
        ),
    )
    return fields


@cache
def stage_file_model() -> type[StrictModel]:
    """A reusable stage, `stages/NAME.yaml`: the keys of a stage; pipelines refer to it with `use: NAME`."""
    return create_model(
        "StageFileSpec", __base__=StrictModel, __doc__=stage_file_model.__doc__, **_stage_fields()
    )


def _needs_use_or_a_kind_and_prompt(schema: dict[str, Any]) -> None:
    """A stage entry names a stage file, or holds a kind's key and, when that kind needs one, a prompt."""
    schema["anyOf"] = [{"required": ["use"]}] + [
        {"required": [key, "prompt"] if kind.spec.model_fields["prompt"].is_required() else [key]}
        for key, kind in node_kinds().items()
    ]


@cache
def stage_entry_model() -> type[StrictModel]:
    class StageEntrySpec(stage_file_model()):  # type: ignore[misc]  # a class made at run time
        """A stage in a pipeline file: written out in full, or `use: NAME` of a stage file, overridden key by key."""  # noqa: E501 (the text is the schema description, one line)

        model_config = ConfigDict(json_schema_extra=_needs_use_or_a_kind_and_prompt)

        use: str | None = Field(
            None,
            description=(
                "Name of a reusable stage file: `stages/NAME.yaml` next to the pipeline file, else in "
                "`../stages`. A plain name (letters, digits, `_`, `-`, `.`), not a path; a stage file that "
                "links outside its stages directory is refused. Other keys given here override the file's."
            ),
        )

    return StageEntrySpec


@cache
def pipeline_file_model() -> type[StrictModel]:
    StageEntrySpec = stage_entry_model()  # the name pydantic gives the schema

    class PipelineFileSpec(StrictModel):
        """A pipeline file: models, stages and (optionally) the wiring between them."""

        name: str | None = Field(
            None, description="Pipeline name; defaults to the file name without extension."
        )
        description: str = Field("", description="What the pipeline does.")
        models: dict[str, ModelSpec] = Field(default_factory=dict, description="Named model handles.")
        inputs: list[str] = Field(
            default_factory=list,
            description=(
                "Field names a structured input (a JSON object) supplies, which prompt templates may then "
                "read by name (`{{ goal }}`). Identifiers, not stage names, not `input` (every template may "
                "read `{{ input }}`). A run's input must then be an object with every declared field."
            ),
        )
        stages: dict[str, StageEntrySpec] = Field(  # type: ignore[valid-type]  # a class made at run time
            min_length=1,
            description=(
                "Stages by name, in run order when there are no edges. Names are Python identifiers (prompt "
                "templates use them), other than `input` and `END`."
            ),
        )
        edges: list[EdgeSpec] | None = Field(
            None,
            description=(
                "The complete wiring. Without it the stages run one after another in file order. With it the "
                "run starts at `entry`, and a stage with no outgoing edge ends its branch."
            ),
        )
        entry: str | None = Field(
            None, description="The stage to start at (with `edges`); defaults to the first stage."
        )
        output: str | None = Field(
            None,
            description=(
                "The stage whose text is the run's final output; defaults to the last message of the run."
            ),
        )

    return PipelineFileSpec
