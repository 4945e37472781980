"""How `fslm eval` scores a pipeline that ends in a choice stage: lm-eval-harness's two accuracies, from the
stage's record.

`acc` is 1 when the stage's own pick (its own normalisation; an ensemble's averaged probabilities) is the gold
option. `acc_norm` is 1 when the pick by per-byte scores is (lm-eval's acc_norm): the stage's decision made
again from the record's per-option log-probabilities and byte counts. A best-first stage reports acc alone:
the per-byte scores of the options it pruned are unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fslm.nodes.choices.decision import choose, scorer_record
from fslm.nodes.choices.record import ChoicesRecord
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.models import StageSpecBase

CHOICE_METRICS = ["acc", "acc_norm"]


def choice_output(name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase]) -> ChoiceOutput:
    assert isinstance(stage, ChoiceStageSpec)
    return choice_stage_output(name, stage)


def choice_stage_output(name: str, stage: ChoiceStageSpec, scored_as: str | None = None) -> ChoiceOutput:
    """`stage`'s picks scored from its record; `scored_as`: the name its messages carry when that is not
    `name` (a router scores the record of the expert it chose)."""
    weights = scorer_weights(stage)
    metrics = ["acc"] if stage.search == "best_first" else CHOICE_METRICS

    def scores(messages: Sequence[Mapping[str, Any]], gold: str) -> dict[str, float] | None:
        record = last_record(messages, scored_as or name)
        if record is None:
            return None
        return {
            metric: value
            for metric, value in choice_scores(record, gold, weights).items()
            if metric in metrics
        }

    answers = [*(stage.labels or stage.listed_options or [])]
    if stage.abstain is not None and stage.abstain.answer not in answers:
        answers.append(stage.abstain.answer)
    return ChoiceOutput(name, stage.choices_field, answers, metrics, scores)


def last_record(messages: Sequence[Mapping[str, Any]], stage: str) -> ChoicesRecord | None:
    return next((message["choices"] for message in reversed(messages) if message["stage"] == stage), None)


def scorer_weights(spec: ChoiceStageSpec) -> list[float]:
    """A choice stage's scorers' weights in record order: one for a model, each member's for an ensemble."""
    ensemble = spec.ensemble
    if ensemble is None:
        return [1.0]
    return list(ensemble.weights or [1.0] * len(ensemble.members))


def choice_scores(record: ChoicesRecord, reference: str, weights: list[float]) -> dict[str, float]:
    """`acc` and `acc_norm` of one run, from its choice stage's record; `reference` is the gold option (or its
    label, when the stage has a verbalizer, or its abstain answer). A stage that abstained is right when the
    reference is the answer it wrote instead of its pick."""
    abstained = record.get("abstained")
    if abstained is not None:
        right = float(reference == abstained["answer"])
        return {"acc": right, "acc_norm": right}
    answers = record.get("labels", record["options"])
    if reference not in answers:
        return {"acc": 0.0, "acc_norm": 0.0}  # the abstain answer, which the stage did not write
    gold = answers.index(reference)
    return {"acc": float(record["chosen"] == gold), "acc_norm": float(pick(record, "byte", weights) == gold)}


def pick(record: ChoicesRecord, how: str, weights: list[float]) -> int:
    """The option the stage would have picked normalising as `how` says, from the record's numbers."""
    rescored = [
        scorer_record(scorer["model"], scorer["logprobs"], scorer["tokens"], record["bytes"], how)
        for scorer in record["scorers"]
    ]
    return choose(record["options"], record["bytes"], how, rescored, weights)["chosen"]
