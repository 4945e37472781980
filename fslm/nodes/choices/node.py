"""The `choices` graph node: render the prompt and each option's continuation, have the runtime score them,
pick, and record how."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from fslm.errors import FslmError
from fslm.graph.state import RunState, StageMessage
from fslm.nodes.choices.decision import choose, scorer_record, unsettled
from fslm.nodes.choices.record import AbstainedRecord, ChoicesRecord
from fslm.nodes.choices.spec import CHOICE_VARIABLE, ChoiceStageSpec
from fslm.nodes.prompt import compile_prompt, render_prompt, template_variables
from fslm.runtime.scoring import OptionScores, ScoreRequest
from fslm.spec.templates import compile_template, render_template

logger = logging.getLogger(__name__)

# Serves one request; the runtime batches concurrent runs' requests together.
Score = Callable[[ScoreRequest], OptionScores]


def stage_options(
    name: str, stage: ChoiceStageSpec, variables: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """The stage's options for this run, each once in first-seen order, and the ones listed more than once."""
    listed = stage.listed_options
    if listed is not None:
        return listed, []
    field = stage.choices_field
    assert field is not None  # validated: a list, a mapping or one input field
    where = f"stage {name!r}: the options in input field {field!r}"
    if field not in variables:
        raise FslmError(f"{where} are missing: the input has no field {field!r}")
    value = variables[field]
    if not isinstance(value, list):
        raise FslmError(f"{where} must be a list of texts, not {type(value).__name__} {_shown(value)}")
    if not value:
        raise FslmError(f"{where} are an empty list; a choice needs at least two options")
    for index, option in enumerate(value):
        if not isinstance(option, str):
            raise FslmError(
                f"{where}: option {index + 1} is {type(option).__name__} {_shown(option)}, not text"
            )
    options = list(dict.fromkeys(value))
    if len(options) < 2:
        raise FslmError(f"{where} hold one option ({_shown(options[0])}); a choice needs at least two")
    duplicates = [option for option in options if value.count(option) > 1]
    return options, duplicates


def make_choices_node(name: str, stage: ChoiceStageSpec, score: Score) -> Callable[[RunState], dict]:
    template = compile_prompt(stage)
    continuation = compile_template(stage.continuation, f"stage '{name}': its continuation template")
    scorers = _scorers(stage)

    def run_choices(state: RunState) -> dict:
        variables = template_variables(state)
        prompt = render_prompt(name, stage, template, variables)
        options, duplicates = stage_options(name, stage, variables)
        if duplicates:
            logger.warning(
                "stage %r: options listed more than once are scored once: %s",
                name,
                ", ".join(map(repr, duplicates)),
            )
        sizes = [len(option.encode()) for option in options]
        if stage.normalize == "byte" and 0 in sizes:
            raise FslmError(
                f"stage {name!r} normalizes per byte, but option {sizes.index(0) + 1} is empty (0 bytes)"
            )
        continuations = tuple(
            render_template(
                continuation,
                {**variables, CHOICE_VARIABLE: option},
                f"stage '{name}': its continuation template",
            )
            for option in options
        )
        decide = partial(_decide, name, stage, scorers, score, prompt, continuations, options)
        results, record = decide(full=False)
        seconds = sum(result.seconds for result in results)
        abstain = stage.abstain
        if abstain is not None and unsettled(record, abstain.below):
            # The search's bounds cannot say whether the pick is too unlikely: score every option.
            results, record = decide(full=True)
            seconds += sum(result.seconds for result in results)
        if duplicates:
            record["duplicates"] = duplicates
        labels = stage.labels
        if labels is not None:
            record["labels"] = labels
        chosen = options[record["chosen"]] if labels is None else labels[record["chosen"]]
        if abstain is not None and record["probabilities"][record["chosen"]] < abstain.below:
            record["abstained"] = AbstainedRecord(below=abstain.below, answer=abstain.answer)
            chosen = abstain.answer
        message = ChoicesMessage(
            stage=name,
            text=chosen,
            model=" + ".join(scorer.label for scorer in scorers),
            adapter=str(stage.adapter) if stage.adapter else None,
            prompt=prompt,
            prompt_tokens=results[0].prompt_tokens,
            completion_tokens=results[0].tokens[record["chosen"]],
            seconds=round(seconds, 4),
            cached_prompt_tokens=results[0].cached_prompt_tokens,
            choices=record,
        )
        return {"outputs": {name: chosen}, "log": [message]}

    run_choices.__name__ = f"choices_{name}"
    return run_choices


def _decide(
    name: str,
    stage: ChoiceStageSpec,
    scorers: list[Scorer],
    score: Score,
    prompt: str,
    continuations: tuple[str, ...],
    options: list[str],
    full: bool,
) -> tuple[list[OptionScores], ChoicesRecord]:
    """Each scorer's scores of the options (all of them when `full`, else as the stage searches) and the
    stage's decision from them."""
    sizes = [len(option.encode()) for option in options]
    results = [_score(name, score, scorer.request(prompt, continuations, stage, full)) for scorer in scorers]
    records = [
        scorer_record(scorer.label, result.logprobs, result.tokens, sizes, stage.normalize, result.pruned)
        for scorer, result in zip(scorers, results, strict=True)
    ]
    record = choose(options, sizes, stage.normalize, records, [scorer.weight for scorer in scorers])
    if results[0].pruned:
        record["pruned"] = list(results[0].pruned)
    return results, record


class ChoicesMessage(StageMessage):
    choices: ChoicesRecord


@dataclass(frozen=True)
class Scorer:
    """A model that scores the options: the stage's, or an ensemble member with its weight."""

    model: str
    adapter: str | None
    label: str
    weight: float = 1.0

    def request(
        self, prompt: str, continuations: tuple[str, ...], stage: ChoiceStageSpec, full: bool
    ) -> ScoreRequest:
        return ScoreRequest(
            model=self.model,
            prompt=prompt,
            continuations=continuations,
            adapter=self.adapter,
            system=stage.system,
            chat_template=stage.chat_template,
            best_first=stage.search == "best_first" and not full,
        )


def _scorers(stage: ChoiceStageSpec) -> list[Scorer]:
    if stage.ensemble is None:
        assert stage.model is not None  # validated: one of model or ensemble
        return [Scorer(stage.model, str(stage.adapter) if stage.adapter else None, stage.model)]
    members = stage.ensemble.members
    weights = stage.ensemble.weights or [1.0] * len(members)
    return [
        Scorer(member.model, str(member.adapter) if member.adapter else None, member.label, weight)
        for member, weight in zip(members, weights, strict=True)
    ]


def _score(name: str, score: Score, request: ScoreRequest) -> OptionScores:
    try:
        return score(request)
    except FslmError as error:
        raise FslmError(f"stage {name!r}, model {request.model!r}: {error}") from error


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
