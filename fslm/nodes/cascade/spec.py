"""The `cascade` kind's YAML keys (the `cascade:` block of a stage) and its checks against the pipeline.

A cascade stage runs its steps (other stages of the pipeline) from the cheapest on, and stops at the first
whose confidence reaches its threshold. The checks here run in the spec layer: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec.kinds import Report, StageChecks, kind_of
from fslm.spec.models import StageSpecBase
from fslm.spec.reporting import did_you_mean

# Confidences of generated text; refused with a message of their own until generation returns them.
TOKEN_MEASURES = ("mean_logprob", "min_logprob")
_OWN_KEYS = ("prompt", "system", "chat_template", "generation")


class CascadeSpec(BaseModel):
    """Steps from the cheapest to the dearest, a confidence measure, and a threshold per step but the last."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    stages: list[str] = Field(
        min_length=2,
        description=(
            "The steps: choice stages of the pipeline, cheapest first, picking among the same options. Each "
            "runs only when every step before it was unsure."
        ),
    )
    confidence: Literal["probability", "margin"] = Field(
        "probability",
        description=(
            "How sure a step is of its pick: `probability`, the probability it gives the option it picked; "
            "`margin`, that probability minus the second highest."
        ),
    )
    thresholds: list[float] = Field(
        description=(
            "One per step but the last, in [0, 1]: a step whose confidence is at least its threshold "
            "answers; below it, the next step runs. `fslm finetune cascade` picks them on dev data."
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
        for number, threshold in enumerate(self.thresholds, start=1):
            if not (math.isfinite(threshold) and 0 <= threshold <= 1):
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
    """No prompt or decoding settings of its own; a token-level measure gets a message that says why not."""
    for key in _OWN_KEYS:
        if key in stage:
            checks.report(
                ("stages", name, key),
                f"stage {name!r}: a cascade has no {key!r} of its own (its stages have theirs)",
            )
            stage.pop(key)
    cascade = stage.get("cascade")
    if isinstance(cascade, dict) and cascade.get("confidence") in TOKEN_MEASURES:
        checks.report(
            ("stages", name, "cascade", "confidence"),
            f"stage {name!r}: confidence {cascade['confidence']!r} needs the log-probability of each "
            "generated token, which fslm's runtime does not return yet; cascade choice stages with "
            "'probability' or 'margin' (docs/cascades.md)",
        )
        cascade.pop("confidence")


def check_cascade_stages(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase], report: Report
) -> None:
    """Every step is another stage, a choice stage, and all of them pick among the same options."""
    assert isinstance(stage, CascadeStageSpec)
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
        elif not isinstance(spec := stages[step], ChoiceStageSpec):
            report(
                (*path, index),
                f"stage {name!r}: {step!r} is a {spec.kind!r} stage; a cascade's stages must be choice "
                "stages, whose pick has a probability (a generating stage's confidence needs per-token "
                "log-probabilities, which fslm's runtime does not return yet)",
            )
        else:
            options.add((spec.choices_field, repr(spec.choices)))
    if len(options) > 1:
        report(
            path,
            f"stage {name!r}: its stages must pick among the same options (the same `choices:`), so that "
            "any of them can answer",
        )
