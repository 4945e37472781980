"""The `router` kind's YAML keys (the `router:` block of a stage) and its checks against the pipeline.

A router stage runs one of its expert stages (other stages of the pipeline, of any kind) on each input; its
`prompt` renders the query the router reads. The checks here run in the spec layer: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fslm.errors import FslmError
from fslm.nodes.router.fingerprint import expert_fingerprint
from fslm.runtime.router.checkpoint import read_router_config
from fslm.spec.kinds import Report, StageChecks
from fslm.spec.models import StageSpecBase
from fslm.spec.reporting import did_you_mean

# Off while `fslm finetune router` loads the pipeline whose router it is about to (re)train.
CHECK_CHECKPOINT: ContextVar[bool] = ContextVar("fslm_router_check_checkpoint", default=True)


class RouterSpec(BaseModel):
    """Which expert answers each input: the argmax of a trained router (Zooter), or a baseline."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    experts: list[str] = Field(
        min_length=2, description="The expert stages (names of other stages of the pipeline), in order."
    )
    method: Literal["learned", "rank", "random", "fixed"] = Field(
        "learned",
        description=(
            "`learned`: the trained router's argmax (one expert call). `rank`: run every expert and keep the "
            "answer of highest confidence (choice experts: the probability of the option they picked). "
            "`random`: a uniformly random expert, seeded by `seed` and the query. `fixed`: always `fixed`."
        ),
    )
    checkpoint: Path | None = Field(
        None,
        description=(
            "The router directory written by `fslm finetune router` (relative to the file that names it); "
            "needed by `learned`."
        ),
    )
    fixed: str | None = Field(None, description="The expert `method: fixed` always picks.")
    seed: int = Field(0, description="Seed of `method: random` (with the query text, so reruns agree).")
    cost_weight: float = Field(
        0.0,
        ge=0.0,
        description=(
            "`learned` picks the expert maximising probability − cost_weight × cost / (largest cost): 0 "
            "ignores cost, larger values prefer cheaper experts."
        ),
    )
    costs: dict[str, float] | None = Field(
        None,
        description=(
            "Each expert's cost (> 0, any unit). Default: the seconds per call measured when the router was "
            "trained."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> RouterSpec:
        repeated = sorted({name for name in self.experts if self.experts.count(name) > 1})
        if repeated:
            raise ValueError(f"experts are listed twice: {', '.join(map(repr, repeated))}")
        if self.method == "learned" and self.checkpoint is None:
            raise ValueError("method 'learned' needs a 'checkpoint' (train one with `fslm finetune router`)")
        if self.method == "fixed" and self.fixed not in self.experts:
            raise ValueError(
                f"method 'fixed' needs 'fixed' set to one of the experts ({', '.join(self.experts)}), "
                f"not {self.fixed!r}"
            )
        if self.fixed is not None and self.method != "fixed":
            raise ValueError(f"'fixed' applies to method 'fixed', not {self.method!r}")
        for name, cost in (self.costs or {}).items():
            if name not in self.experts:
                raise ValueError(
                    f"'costs' names {name!r}, which is not an expert ({', '.join(self.experts)})"
                )
            if cost <= 0:
                raise ValueError(f"the cost of {name!r} must be greater than 0")
        return self


class RouterStageSpec(StageSpecBase):
    """A stage that hands each input to one of its expert stages; its prompt is the query the router reads."""

    kind: ClassVar[str] = "router"

    router: RouterSpec = Field(description="The experts and how one is chosen (see docs/router.md).")


def router_experts(stage: StageSpecBase) -> list[str]:
    assert isinstance(stage, RouterStageSpec)
    return stage.router.experts


def check_router(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    """The checkpoint is a directory, relative to the file that names it; no decoding settings."""
    if "generation" in stage:
        checks.report(
            ("stages", name, "generation"),
            f"stage {name!r}: a router generates nothing itself (its experts have their own 'generation')",
        )
        stage.pop("generation")
    router = stage.get("router")
    if isinstance(router, dict) and not CHECK_CHECKPOINT.get():
        # `fslm finetune router` reads only the experts and the query; the checkpoint is what it will write.
        router.pop("checkpoint", None)
        router["method"] = "random"
    if isinstance(router, dict) and router.get("checkpoint") is not None:
        path = ("stages", name, "router", "checkpoint")
        if checks.resolve_directory(name, router, "checkpoint", path) is None:
            router.pop("checkpoint")


def check_router_stages(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase], report: Report
) -> None:
    """Every expert is another stage, not a router; `rank` has experts with a confidence; a `learned`
    router's checkpoint was trained for these experts, with these adapters."""
    assert isinstance(stage, RouterStageSpec)
    router = stage.router
    path = ("stages", name, "router", "experts")
    others = [other for other in stages if other != name]
    for index, expert in enumerate(router.experts):
        if expert == name:
            report((*path, index), f"stage {name!r} lists itself among its experts; a router cannot be one")
        elif expert not in stages:
            report(
                (*path, index),
                f"stage {name!r}: expert {expert!r} is not a stage of the pipeline"
                f"{did_you_mean(expert, others, what='stages')}",
            )
        elif isinstance(stages[expert], RouterStageSpec):
            report(
                (*path, index), f"stage {name!r}: expert {expert!r} is itself a router; route to it directly"
            )
        elif router.method == "rank" and stages[expert].kind != "choices":
            report(
                (*path, index),
                f"stage {name!r}: method 'rank' compares the experts' confidence in their answers, which "
                f"only choice stages record; expert {expert!r} is a {stages[expert].kind!r} stage",
            )
    experts_known = all(expert in stages and expert != name for expert in router.experts)
    if router.checkpoint is not None and experts_known and CHECK_CHECKPOINT.get():
        problem = checkpoint_problem(router.checkpoint, router.experts, stages)
        if problem is not None:
            report(("stages", name, "router", "checkpoint"), f"stage {name!r}: {problem}")


def checkpoint_problem(
    directory: Path, experts: list[str], stages: Mapping[str, StageSpecBase]
) -> str | None:
    """Why the checkpoint in `directory` does not fit these experts, or None when it does."""
    try:
        config = read_router_config(directory)
    except FslmError as error:
        return str(error)
    retrain = "retrain it with `fslm finetune router`"
    if config.expert_names != experts:
        return (
            f"the router checkpoint {directory} was trained for the experts "
            f"[{', '.join(config.expert_names)}], not [{', '.join(experts)}] (the order counts); {retrain}"
        )
    changed = [
        entry.name for entry in config.experts if entry.fingerprint != expert_fingerprint(stages[entry.name])
    ]
    if changed:
        return (
            f"the adapters of expert(s) {', '.join(map(repr, changed))} changed since the router checkpoint "
            f"{directory} was trained; {retrain}"
        )
    return None
