"""Scoring a pipeline whose output stage is a choice stage: lm-eval-harness's two accuracies, from the stage's
record.

The output stage may also be a boost stage with `choices` (scored as the choice stage it runs: its members
weighted by α), or a router whose experts are choice stages reading the same options: each run is then
scored from the record of the expert the router chose.

`acc` is 1 when the stage's own pick (its own normalisation; an ensemble's averaged probabilities) is the gold
option. `acc_norm` is 1 when the pick by per-byte scores is (lm-eval's acc_norm): the stage's decision made
again from the record's per-option log-probabilities and byte counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fslm.nodes.boost.spec import BoostStageSpec
from fslm.nodes.choices.decision import choose, scorer_record
from fslm.nodes.choices.record import ChoicesRecord
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.nodes.router.spec import RouterStageSpec
from fslm.spec.models import END, PipelineSpec

CHOICE_METRICS = ["acc", "acc_norm"]


@dataclass(frozen=True)
class ChoiceStage:
    """The stage whose pick is every run's output: a choice stage, or a router over choice stages (`spec` is
    then its first expert's, which reads the same options as the others)."""

    name: str
    spec: ChoiceStageSpec
    experts: Mapping[str, ChoiceStageSpec] = field(default_factory=dict)  # a router's, by name


def output_choice_stage(spec: PipelineSpec) -> ChoiceStage | None:
    """The choice stage that gives every run's output: the pipeline's `output` stage, or the only stage that
    ends runs; None when that stage is neither a choice stage (or a boost stage with `choices`) nor a router
    over choice stages that read the same options, or several stages end runs."""
    ending = [spec.output] if spec.output else _ending_stages(spec)
    if len(ending) != 1:
        return None
    stage = spec.stages[ending[0]]
    if isinstance(stage, ChoiceStageSpec):
        return ChoiceStage(ending[0], stage)
    if isinstance(stage, BoostStageSpec) and stage.choices is not None:
        return ChoiceStage(ending[0], stage.as_choice_stage())
    if isinstance(stage, RouterStageSpec):
        experts = {
            name: expert
            for name in stage.router.experts
            if isinstance(expert := spec.stages[name], ChoiceStageSpec)
        }
        options = {
            (expert.choices_field, repr(expert.choices_field or expert.choices))
            for expert in experts.values()
        }
        if len(experts) == len(stage.router.experts) and len(options) == 1:
            return ChoiceStage(ending[0], next(iter(experts.values())), experts)
    return None


def output_record(
    stage: ChoiceStage, messages: Sequence[Mapping]
) -> tuple[ChoicesRecord, list[float]] | None:
    """The choice record whose pick is a run's output, and its scorers' weights: the choice stage's own, or
    for a router the chosen expert's; None when the run did not get there."""
    name, spec = stage.name, stage.spec
    if stage.experts:
        routed = next((message for message in reversed(messages) if message["stage"] == stage.name), None)
        if routed is None:
            return None
        name = routed["router"]["chosen"]
        spec = stage.experts[name]
    record = next((message["choices"] for message in reversed(messages) if message["stage"] == name), None)
    return None if record is None else (record, scorer_weights(spec))


def scorer_weights(spec: ChoiceStageSpec) -> list[float]:
    """A choice stage's scorers' weights in record order: one for a model, each member's for an ensemble."""
    ensemble = spec.ensemble
    if ensemble is None:
        return [1.0]
    return list(ensemble.weights or [1.0] * len(ensemble.members))


def _ending_stages(spec: PipelineSpec) -> list[str]:
    ending = (source for edge in spec.edges if END in edge.next_stages() for source in edge.sources)
    return list(dict.fromkeys(ending))


def choice_scores(record: ChoicesRecord, reference: str, weights: list[float]) -> dict[str, float]:
    """`acc` and `acc_norm` of one run, from its choice stage's record; `reference` is the gold option (or its
    label, when the stage has a verbalizer)."""
    gold = record.get("labels", record["options"]).index(reference)
    return {"acc": float(record["chosen"] == gold), "acc_norm": float(pick(record, "byte", weights) == gold)}


def pick(record: ChoicesRecord, how: str, weights: list[float]) -> int:
    """The option the stage would have picked normalising as `how` says, from the record's numbers."""
    rescored = [
        scorer_record(scorer["model"], scorer["logprobs"], scorer["tokens"], record["bytes"], how)
        for scorer in record["scorers"]
    ]
    return choose(record["options"], record["bytes"], how, rescored, weights)["chosen"]
