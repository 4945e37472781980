"""The `ensemble` kind's YAML keys: the `ensemble:` block of a stage, and its checks against the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fslm.nodes.members import check_members, refuse_stage_adapter
from fslm.spec.kinds import StageChecks
from fslm.spec.models import StageSpecBase


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class EnsembleMemberSpec(_Strict):
    """One member: a model handle, written alone (`smol`) or with an adapter (`{model: smol, adapter: ./a}`)."""  # noqa: E501 (the text is the schema description, one line)

    model: str = Field(description="The member's model handle (a key of `models`).")
    adapter: Path | None = Field(
        None,
        description="A peft (LoRA) adapter directory for this member, relative to the file that names it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _handle_alone(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @property
    def label(self) -> str:
        return self.model if self.adapter is None else f"{self.model}+{self.adapter.name}"


class EnsembleSpec(_Strict):
    """Several models answer as one: at each step they vote over the union of their top-k tokens (UniTE)."""

    method: Literal["unite"] = Field(
        "unite", description="The ensembling method; `unite` is the one there is."
    )
    members: list[EnsembleMemberSpec] = Field(
        min_length=1, description="The members: model handles, each with an optional adapter."
    )
    top_k: int = Field(10, ge=1, le=1000, description="How many top tokens of each member join the union.")
    weights: list[float] | None = Field(
        None,
        description=(
            "One weight (> 0) per member, in member order; they are normalised. Default: equal weights."
        ),
    )
    primary: str | None = Field(
        None,
        description=(
            "The member whose tokenizer counts the stage's tokens and whose top-k comes first in the union "
            "(ties go to it): a member's model handle. Default: the first member."
        ),
    )

    @model_validator(mode="after")
    def _weights_and_primary_fit_the_members(self) -> EnsembleSpec:
        if self.weights is not None:
            if len(self.weights) != len(self.members):
                raise ValueError(
                    f"'weights' has {len(self.weights)} values for {len(self.members)} members; "
                    "give one per member"
                )
            if any(weight <= 0 for weight in self.weights):
                raise ValueError("every weight must be greater than 0")
        if self.primary is not None and self.primary not in self.handles:
            raise ValueError(f"primary {self.primary!r} is not a member (members: {', '.join(self.handles)})")
        return self

    @property
    def handles(self) -> list[str]:
        return [member.model for member in self.members]

    @property
    def primary_index(self) -> int:
        return self.handles.index(self.primary) if self.primary is not None else 0


class EnsembleStageSpec(StageSpecBase):
    """A stage served by several models voting token by token."""

    kind: ClassVar[str] = "ensemble"

    ensemble: EnsembleSpec = Field(
        description="Instead of `model`: several models that vote token by token (see docs/unite.md)."
    )


def check_ensemble(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    """Members are defined model handles; member adapters are peft adapter directories."""
    refuse_stage_adapter(name, stage, "ensemble", checks)
    check_members(name, stage, "ensemble", checks)
