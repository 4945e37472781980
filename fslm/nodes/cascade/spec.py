"""The `cascade` kind's YAML keys (the `cascade:` block of a stage) and its checks against the pipeline.

A cascade stage runs its steps (other stages of the pipeline) from the cheapest on, and stops at the first
whose confidence reaches its threshold. The checks here run in the spec layer: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fslm.nodes.cascade.confidence import TOKEN_MEASURES
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.nodes.stage.spec import StageSpec
from fslm.spec.kinds import Report, StageChecks, kind_of
from fslm.spec.models import StageSpecBase
from fslm.spec.reporting import did_you_mean

_OWN_KEYS = ("prompt", "system", "chat_template", "generation")


class CascadeSpec(BaseModel):
    """Steps from the cheapest to the dearest, a confidence measure, and a threshold per step but the last."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    stages: list[str] = Field(
        min_length=2,
        description=(
            "The steps, cheapest first: choice stages picking among the same options, or (with a token "
            "measure) generating stages. Each runs only when every step before it was unsure."
        ),
    )
    confidence: Literal["probability", "margin", "mean_logprob", "min_logprob"] = Field(
        "probability",
        description=(
            "How sure a step is. Choice stages: `probability`, the probability it gives the option it "
            "picked; `margin`, that probability minus the second highest. Generating stages: "
            "`mean_logprob` or `min_logprob`, the mean or the lowest log-probability of the tokens it wrote."
        ),
    )
    thresholds: list[float] = Field(
        description=(
            "One per step but the last, in [0, 1] for a choice measure and at most 0 for a token measure: a "
            "step whose confidence is at least its threshold answers; below it, the next step runs. "
            "`fslm finetune cascade` picks them on dev data."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> CascadeSpec:
        repeated = sorted({name for name in self.stages if self.stages.count(name) > 1})
        if repeated:
            raise ValueError(f"stages are listed twice: {', '.join(map(repr, repeated))}")
        if len(self.thresholds) != len(self.stages) - 1:
            raise ValueError(
                f"'thresholds' has {len(self.thresholds)} value(s) for {len(self.stages)} stages; give one "
                "per stage but the last (the last always answers)"
            )
        tokens = self.confidence in TOKEN_MEASURES
        for number, threshold in enumerate(self.thresholds, start=1):
            if tokens and not (math.isfinite(threshold) and threshold <= 0):
                raise ValueError(
                    f"threshold {number} is {threshold}; a {self.confidence} is a log-probability, at most "
                    "0, so thresholds must be finite and at most 0 too"
                )
            if not tokens and not (math.isfinite(threshold) and 0 <= threshold <= 1):
                raise ValueError(
                    f"threshold {number} is {threshold}; a {self.confidence} lies in [0, 1], so thresholds "
                    "must too"
                )
        return self


class CascadeStageSpec(StageSpecBase):
    """A stage that answers with its cheapest step that is sure enough; it has no prompt of its own."""

    kind: ClassVar[str] = "cascade"

    cascade: CascadeSpec = Field(
        description="The steps, the confidence measure and the thresholds (see docs/cascades.md)."
    )
    prompt: str = Field("", description="Not used by a cascade: its steps have their own prompts.")


def cascade_steps(stage: StageSpecBase) -> list[str]:
    assert isinstance(stage, CascadeStageSpec)
    return stage.cascade.stages


def check_cascade(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    """No prompt or decoding settings of its own."""
    for key in _OWN_KEYS:
        if key in stage:
            checks.report(
                ("stages", name, key),
                f"stage {name!r}: a cascade has no {key!r} of its own (its stages have theirs)",
            )
            stage.pop(key)


def check_cascade_stages(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase], report: Report
) -> None:
    """Every step is another stage that runs alone: choice stages all picking among the same options, or
    with a token measure, generating stages."""
    assert isinstance(stage, CascadeStageSpec)
    measure = stage.cascade.confidence
    path = ("stages", name, "cascade", "stages")
    others = [other for other in stages if other != name]
    options = set()
    for index, step in enumerate(stage.cascade.stages):
        if step == name:
            report((*path, index), f"stage {name!r} lists itself among its stages")
        elif step not in stages:
            report(
                (*path, index),
                f"stage {name!r}: {step!r} is not a stage of the pipeline"
                f"{did_you_mean(step, others, what='stages')}",
            )
        elif kind_of(stages[step]).inner_stages is not None:
            report(
                (*path, index),
                f"stage {name!r}: {step!r} is a {stages[step].kind!r} stage, which runs other stages itself; "
                "a cascade's stages must run alone",
            )
        elif measure in TOKEN_MEASURES:
            if not isinstance(stages[step], StageSpec):
                report(
                    (*path, index),
                    f"stage {name!r}: {step!r} is a {stages[step].kind!r} stage; confidence {measure!r} is "
                    "the log-probability of generated tokens, so a cascade with it runs generating stages "
                    "(`model:` and a prompt, no `choices:`); a choice stage's confidence is 'probability' or "
                    "'margin'",
                )
        elif not isinstance(spec := stages[step], ChoiceStageSpec):
            report(
                (*path, index),
                f"stage {name!r}: {step!r} is a {spec.kind!r} stage; confidence {measure!r} is a pick's, so "
                "a cascade with it runs choice stages (for generating stages use 'mean_logprob' or "
                "'min_logprob')",
            )
        else:
            options.add((spec.choices_field, repr(spec.choices)))
    if len(options) > 1:
        report(
            path,
            f"stage {name!r}: its stages must pick among the same options (the same `choices:`), so that "
            "any of them can answer",
        )
