"""Pydantic models of the `fslm finetune boost` and `fslm finetune w2s` recipes. Their keys reuse the adapter
recipe's sections (`target`, `lora`, `train`), so a weak member trains as one adapter would."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fslm.eval.metrics import MetricName
from fslm.finetune.recipe import DatasetSource, LoraSpec, RecipeModel, RecipePath, TargetSpec, TrainSpec


class WeakEnsembleSpec(RecipeModel):
    """T rounds of AdaBoost (SAMME), each training one LoRA adapter of the target stage on the weighted
    training set."""

    target: TargetSpec = Field(description="The weak stage: a single-model stage (text or choices).")
    data: DatasetSource = Field(
        description="The labelled training set (a choices stage: options per record)."
    )
    rounds: int = Field(3, ge=1, le=100, description="T: how many members to train at most.")
    error: Literal["sample", "token"] = Field(
        "sample",
        description="How a round's mistakes are counted: `sample` (the pick, or the whole greedy answer, is "
        "wrong) or `token` (the fraction of gold answer tokens that are not the model's argmax).",
    )
    classes: int | None = Field(
        None,
        ge=2,
        description="K of SAMME's α = ln((1−ε)/ε) + ln(K−1). Default: a choices stage's most common number "
        "of options; 2 for a stage that writes text (right or wrong; see docs/boost.md).",
    )
    lora: LoraSpec = Field(default_factory=LoraSpec, description="Each member's adapter shape.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Each round's optimisation settings.")


class BoostRecipe(WeakEnsembleSpec):
    """`fslm finetune boost`: a weak ensemble, written to `output`."""

    output: RecipePath = Field(description="The boost directory to write (members, α, record).")


class DifficultySplit(RecipeModel):
    """Easy and hard examples: by a field of the data, or by the weak base model's loss on the gold answer."""

    field: str | None = Field(None, description="A record field whose value says easy or hard.")
    easy: list[str] = Field(default_factory=list, description="With `field`: the values that mean easy.")
    easy_fraction: float = Field(
        0.5, gt=0, lt=1, description="Without `field`: the share of examples with the lowest weak loss."
    )

    @model_validator(mode="after")
    def _values_with_a_field(self) -> DifficultySplit:
        if self.field is not None and not self.easy:
            raise ValueError("a split by 'field' needs 'easy': the field's values that mean easy")
        return self


class StrongSpec(RecipeModel):
    """The strong stage and how it is fine-tuned on the weak labels."""

    target: TargetSpec = Field(
        description="The strong stage: a single-model stage of the weak stage's kind (choices, or text)."
    )
    lora: LoraSpec = Field(default_factory=LoraSpec, description="The strong adapter's shape.")
    train: TrainSpec = Field(
        default_factory=TrainSpec, description="The strong stage's optimisation settings."
    )


class W2SRecipe(RecipeModel):
    """`fslm finetune w2s`: a weak ensemble boosted on easy data labels hard data for a strong stage."""

    weak: WeakEnsembleSpec = Field(description="The weak ensemble: trained on the easy part of its `data`.")
    strong: StrongSpec = Field(description="The strong stage.")
    test: DatasetSource = Field(description="Held-out hard test items (gold labels), at least 300 to report.")
    split: DifficultySplit = Field(default_factory=DifficultySplit, description="How easy and hard are told.")
    metric: MetricName | None = Field(
        None,
        description="Text stages: how an answer is scored against the gold answer, by one of fslm eval's "
        "metrics (default exact). Choices stages are scored by the option they pick and take none.",
    )
    max_hard: int | None = Field(
        None, ge=1, description="Use at most this many hard items for pseudo-labels."
    )
    output: RecipePath = Field(description="Directory for the weak members, strong adapters and the report.")
