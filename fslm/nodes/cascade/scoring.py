"""How `fslm eval` scores a cascade that ends a pipeline: a cascade of choice stages by the record of the step
that answered (its steps read the same options); a cascade of generating stages by its text, with a metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fslm.nodes.cascade.confidence import TOKEN_MEASURES
from fslm.nodes.cascade.spec import CascadeStageSpec
from fslm.nodes.choices.scoring import choice_stage_output
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.models import StageSpecBase


def cascade_choice_output(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase]
) -> ChoiceOutput | None:
    assert isinstance(stage, CascadeStageSpec)
    if stage.cascade.confidence in TOKEN_MEASURES:
        return None  # its steps write text
    outputs = {}
    for step in stage.cascade.stages:
        spec = stages[step]
        assert isinstance(spec, ChoiceStageSpec)  # validated: every step is a choice stage
        outputs[step] = choice_stage_output(name, spec, scored_as=step)
    first = next(iter(outputs.values()))
    metrics = [metric for metric in first.metrics if all(metric in out.metrics for out in outputs.values())]

    def scores(messages: Sequence[Mapping[str, Any]], gold: str) -> dict[str, float] | None:
        own = next((message for message in reversed(messages) if message["stage"] == name), None)
        if own is None:
            return None
        found = outputs[own["cascade"]["answered"]].scores(messages, gold)
        return None if found is None else {metric: found[metric] for metric in metrics}

    return ChoiceOutput(name, first.choices_field, first.answers, metrics, scores)
