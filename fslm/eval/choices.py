"""Scoring a pipeline whose output stage is a choice stage: lm-eval-harness's two accuracies, from the stage's
record.

`acc` is 1 when the stage's own pick (its own normalisation; an ensemble's averaged probabilities) is the gold
option. `acc_norm` is 1 when the pick by per-byte scores is (lm-eval's acc_norm): the stage's decision made
again from the record's per-option log-probabilities and byte counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from fslm.nodes.choices.decision import choose, scorer_record
from fslm.nodes.choices.record import ChoicesRecord
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec.models import END, PipelineSpec

CHOICE_METRICS = ["acc", "acc_norm"]


@dataclass(frozen=True)
class ChoiceStage:
    """The choice stage whose pick is every run's output."""

    name: str
    spec: ChoiceStageSpec

    @property
    def weights(self) -> list[float]:
        """The scorers' weights in record order: one for a model, each member's for an ensemble."""
        ensemble = self.spec.ensemble
        if ensemble is None:
            return [1.0]
        return list(ensemble.weights or [1.0] * len(ensemble.members))


def output_choice_stage(spec: PipelineSpec) -> ChoiceStage | None:
    """The choice stage that gives every run's output: the pipeline's `output` stage, or the only stage that
    ends runs; None when that stage is not a choice stage, or several stages end runs."""
    ending = [spec.output] if spec.output else _ending_stages(spec)
    if len(ending) == 1 and isinstance(spec.stages[ending[0]], ChoiceStageSpec):
        return ChoiceStage(ending[0], spec.stages[ending[0]])
    return None


def _ending_stages(spec: PipelineSpec) -> list[str]:
    ending = (source for edge in spec.edges if END in edge.next_stages() for source in edge.sources)
    return list(dict.fromkeys(ending))


def choice_scores(record: ChoicesRecord, reference: str, weights: list[float]) -> dict[str, float]:
    """`acc` and `acc_norm` of one run, from its choice stage's record; `reference` is the gold option."""
    gold = record["options"].index(reference)
    return {"acc": float(record["chosen"] == gold), "acc_norm": float(pick(record, "byte", weights) == gold)}


def pick(record: ChoicesRecord, how: str, weights: list[float]) -> int:
    """The option the stage would have picked normalising as `how` says, from the record's numbers."""
    rescored = [
        scorer_record(scorer["model"], scorer["logprobs"], scorer["tokens"], record["bytes"], how)
        for scorer in record["scorers"]
    ]
    return choose(record["options"], record["bytes"], how, rescored, weights)["chosen"]
