"""Scoring one stage's generations on held-out examples, with its current adapter and with a new one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fslm.eval.metrics import score
from fslm.finetune.sources import Example
from fslm.finetune.target import tunable_stage
from fslm.nodes.prompt import compile_prompt, render_prompt
from fslm.nodes.stage.node import stage_request
from fslm.nodes.stage.spec import StageSpec
from fslm.runtime import ModelRef, Runtime
from fslm.spec import PipelineSpec


def metric_before_after(
    spec: PipelineSpec, stage_name: str, examples: list[Example], metric: str, adapter: Path
) -> dict[str, Any]:
    """Mean `metric` of the stage's text against each example's target, before and after tuning."""
    stage = tunable_stage(spec, stage_name)
    assert isinstance(stage, StageSpec)  # a choices stage is measured by its loss, never by a text metric
    template = compile_prompt(stage)
    requests = [
        stage_request(stage, render_prompt(stage_name, stage, template, example.variables))
        for example in examples
    ]
    model = spec.models[stage.model]
    with Runtime({stage.model: ModelRef(model.source, model.dtype, model.revision, model.device)}) as runtime:
        before = runtime.generate(requests)
        after = runtime.generate([dataclasses.replace(request, adapter=str(adapter)) for request in requests])

    def mean(generations: list) -> float:
        scores = [
            score(metric, generation.text, example.target)
            for generation, example in zip(generations, examples, strict=True)
        ]
        return round(sum(scores) / len(scores), 4)

    return {"name": metric, "items": len(examples), "before": mean(before), "after": mean(after)}
