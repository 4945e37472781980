"""Pydantic models of a router recipe (`fslm finetune router RECIPE.yaml`).

The field descriptions are the recipe's reference (docs/router.md), written for users.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from fslm.finetune.recipe import RecipeModel, RecipePath
from fslm.runtime.router.checkpoint import DEFAULT_ENCODER


class RouterTarget(RecipeModel):
    """The router stage to train; its experts and its query template (`prompt`) come from the pipeline."""

    pipeline: RecipePath = Field(description="Pipeline YAML file, relative to the recipe file.")
    stage: str = Field(min_length=1, description="The router stage.")


class TagRules(RecipeModel):
    """Where each training query's tags come from: a data field, or keyword rules. Give one."""

    field: str | None = Field(None, description="A record field holding a tag (text) or a list of tags.")
    rules: dict[str, list[str]] | None = Field(
        None,
        description=(
            "Tag → keywords: a query carries the tag when its text contains one of them (case ignored)."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> TagRules:
        if (self.field is None) == (self.rules is None):
            raise ValueError("give exactly one of 'field' and 'rules'")
        return self


class RouterData(RecipeModel):
    """The training queries: JSONL records holding the pipeline's inputs and a reference answer."""

    path: RecipePath = Field(description="JSONL file of records, relative to the recipe file.")
    answer: str = Field(
        "answer",
        description=(
            "The record field holding the reference a `metric` reward compares with (for choice experts: "
            "the gold option's text or index)."
        ),
    )
    tags: TagRules | None = Field(None, description="Tags for tag enhancement (none: labels as they are).")
    limit: int | None = Field(None, ge=1, description="Use only the first this many records.")


class RewardSpec(RecipeModel):
    """How an expert's answer is scored. Give exactly one of `metric`, `model` and `callable`."""

    metric: str | None = Field(
        None,
        description=(
            "An `fslm eval` metric against the reference: exact, contains, f1, numeric, …; for choice "
            "experts `acc`, `acc_norm`, or `gold_probability` (the probability the expert gives the gold "
            "option)."
        ),
    )
    model: str | None = Field(
        None,
        description=(
            "A Hugging Face sequence-classification reward model (hub id or directory): the reward is its "
            "first logit for (query, answer)."
        ),
    )
    callable: str | None = Field(
        None,
        description=(
            "`module:function` called as function(query, answer, reference) → float; its module must be "
            "listed in `allow`."
        ),
    )
    allow: list[str] = Field(
        default_factory=list,
        description="Modules a reward `callable` may come from (the recipe runs their code: trust them).",
    )
    batch_size: int = Field(16, ge=1, description="Answers per reward-model forward pass.")

    @model_validator(mode="after")
    def _one_reward(self) -> RewardSpec:
        given = [key for key in ("metric", "model", "callable") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'metric', 'model' and 'callable' (got {given or 'none'})")
        return self


class LabelSpec(RecipeModel):
    """Labels: the softmax of each query's rewards, then tag enhancement."""

    temperature: float = Field(1.0, gt=0, description="Softmax temperature: lower sharpens the labels.")
    beta: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Weight of the query's own label; 1 − beta goes to the mean label of its tags.",
    )


class EncoderSpec(RecipeModel):
    name: str = Field(DEFAULT_ENCODER, description=f"`{DEFAULT_ENCODER}`, or an encoder directory.")
    train: bool = Field(
        False, description="Fine-tune the encoder too (else it is frozen and only the head trains)."
    )
    max_length: int = Field(128, ge=8, le=512, description="Query tokens the encoder reads.")


class RouterTrainSpec(RecipeModel):
    epochs: int = Field(30, ge=1, le=10000, description="Passes over the training part.")
    learning_rate: float = Field(
        1e-2, gt=0, description="AdamW learning rate (about 2e-5 suits `encoder.train: true`)."
    )
    batch_size: int = Field(32, ge=1, description="Queries per optimizer step.")
    held_out: float = Field(
        0.2, gt=0.0, lt=1.0, description="Fraction of the queries held out to pick the epoch (lowest KL)."
    )
    seed: int = Field(0, ge=0, description="Seed of the split, the head's initialisation and the shuffling.")


class RouterRecipe(RecipeModel):
    """`fslm finetune router`: run every expert on the queries, score them, train the router to match."""

    target: RouterTarget
    data: RouterData
    reward: RewardSpec
    labels: LabelSpec = Field(default_factory=LabelSpec)
    encoder: EncoderSpec = Field(default_factory=EncoderSpec)
    train: RouterTrainSpec = Field(default_factory=RouterTrainSpec)
    store: RecipePath | None = Field(
        None,
        description=(
            "Run store recording the experts' runs (reused when the same expert met the same query): "
            "default $FSLM_STORE or the per-user store."
        ),
    )
    batch_size: int = Field(16, ge=1, description="Most expert requests in one forward pass.")
    output: RecipePath = Field(description="The router checkpoint directory to write.")
