"""The `unite` graph node: render the stage's prompt, ask the runtime for an ensemble generation, record
it."""

from __future__ import annotations

from collections.abc import Callable

from fslm.graph.state import RunState, StageMessage
from fslm.nodes.prompt import compile_prompt, render_prompt, template_variables
from fslm.nodes.stage.node import generation_params
from fslm.nodes.unite.record import EnsembleRecord
from fslm.nodes.unite.spec import EnsembleStageSpec
from fslm.runtime.ensemble import EnsembleGeneration, EnsembleMember, EnsembleRequest


class VotedMessage(StageMessage):
    ensemble: EnsembleRecord


# Serves one request; the runtime batches concurrent runs' requests together.
GenerateEnsemble = Callable[[EnsembleRequest], EnsembleGeneration]


def ensemble_request(stage: EnsembleStageSpec, prompt: str) -> EnsembleRequest:
    ensemble = stage.ensemble
    return EnsembleRequest(
        members=tuple(
            EnsembleMember(member.model, str(member.adapter) if member.adapter else None)
            for member in ensemble.members
        ),
        prompt=prompt,
        weights=tuple(ensemble.weights or ()),
        top_k=ensemble.top_k,
        primary=ensemble.primary_index,
        system=stage.system,
        chat_template=stage.chat_template,
        params=generation_params(stage.generation),
    )


def make_unite_node(
    name: str, stage: EnsembleStageSpec, generate: GenerateEnsemble
) -> Callable[[RunState], dict]:
    template = compile_prompt(stage)
    labels = [member.label for member in stage.ensemble.members]

    def run_unite(state: RunState) -> dict:
        prompt = render_prompt(name, stage, template, template_variables(state))
        result = generate(ensemble_request(stage, prompt))
        message = voted_message(name, labels, prompt, result)
        return {"outputs": {name: result.generation.text}, "log": [message]}

    run_unite.__name__ = f"unite_{name}"
    return run_unite


def voted_message(
    name: str, labels: list[str], prompt: str, result: EnsembleGeneration, weights: list[float] | None = None
) -> VotedMessage:
    """The stage message of a text written by members voting token by token (UniTE's, or a boost stage's
    with each member's `weights`)."""
    generation = result.generation
    record = EnsembleRecord(
        members=labels,
        first_tokens=list(result.first_tokens),
        templates=list(result.templates),
        steps=result.steps,
        disagreements=result.disagreements,
    )
    if weights is not None:
        record["weights"] = weights
    return VotedMessage(
        stage=name,
        text=generation.text,
        model=" + ".join(labels),
        adapter=None,
        prompt=prompt,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        seconds=round(generation.seconds, 4),
        cached_prompt_tokens=generation.cached_prompt_tokens,
        ensemble=record,
    )
