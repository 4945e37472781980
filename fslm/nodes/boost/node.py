"""The `boost` graph node: the α-weighted mixture of the members writes the stage's text, or picks one of its
options; the record shows each member's pick and weight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fslm.graph.state import RunState
from fslm.nodes.boost.spec import BoostStageSpec
from fslm.nodes.choices.node import make_choices_node
from fslm.nodes.prompt import compile_prompt, render_prompt, template_variables
from fslm.nodes.stage.node import generation_params
from fslm.nodes.unite.node import voted_message
from fslm.runtime.boost import BoostRequest
from fslm.runtime.ensemble import EnsembleMember

Submit = Callable[[Any], Any]  # the runtime's submit: a BoostRequest, or a choices stage's ScoreRequest


def boost_request(stage: BoostStageSpec, prompt: str) -> BoostRequest:
    boost = stage.boost
    assert boost.alphas is not None  # validated
    return BoostRequest(
        members=tuple(
            EnsembleMember(member.model, str(member.adapter) if member.adapter else None)
            for member in boost.members
        ),
        prompt=prompt,
        alphas=tuple(boost.alphas),
        top_k=boost.top_k,
        system=stage.system,
        chat_template=stage.uses_chat_template,
        params=generation_params(stage.generation),
    )


def make_boost_node(name: str, stage: BoostStageSpec, submit: Submit) -> Callable[[RunState], dict]:
    if stage.choices is not None:
        return _choice_node(name, stage, submit)
    template = compile_prompt(stage)
    labels = [member.label for member in stage.boost.members]

    def run_boost(state: RunState) -> dict:
        prompt = render_prompt(name, stage, template, template_variables(state))
        result = submit(boost_request(stage, prompt))
        message = voted_message(name, labels, prompt, result, stage.boost.weights)
        return {"outputs": {name: result.generation.text}, "log": [message]}

    run_boost.__name__ = f"boost_{name}"
    return run_boost


def _choice_node(name: str, stage: BoostStageSpec, submit: Submit) -> Callable[[RunState], dict]:
    """A choices stage over the members weighted by α; its record gains the members' normalised weights."""
    choose = make_choices_node(name, stage.as_choice_stage(), submit)

    def run_boost_choice(state: RunState) -> dict:
        update = choose(state)
        for message in update["log"]:
            message["choices"]["weights"] = stage.boost.weights
        return update

    run_boost_choice.__name__ = f"boost_{name}"
    return run_boost_choice
