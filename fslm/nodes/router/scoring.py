"""How `fslm eval` scores a router that ends a pipeline: when its experts are choice stages reading the same
options, each run is scored from the record of the expert the router chose."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fslm.nodes.choices.scoring import choice_stage_output
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.nodes.router.spec import RouterStageSpec
from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.models import StageSpecBase


def router_choice_output(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase]
) -> ChoiceOutput | None:
    assert isinstance(stage, RouterStageSpec)
    experts = {
        expert: spec for expert in stage.router.experts if isinstance(spec := stages[expert], ChoiceStageSpec)
    }
    options = {(spec.choices_field, repr(spec.choices_field or spec.choices)) for spec in experts.values()}
    if len(experts) != len(stage.router.experts) or len(options) != 1:
        return None
    outputs = {expert: choice_stage_output(name, spec, scored_as=expert) for expert, spec in experts.items()}

    def scores(messages: Sequence[Mapping[str, Any]], gold: str) -> dict[str, float] | None:
        routed = next((message for message in reversed(messages) if message["stage"] == name), None)
        if routed is None:
            return None
        found = outputs[routed["router"]["chosen"]].scores(messages, gold)
        return None if found is None else {metric: found[metric] for metric in metrics}

    first = next(iter(outputs.values()))
    metrics = [metric for metric in first.metrics if all(metric in out.metrics for out in outputs.values())]
    return ChoiceOutput(name, first.choices_field, first.answers, metrics, scores)
