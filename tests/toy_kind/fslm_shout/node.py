"""The `shout` graph node: a plain generation request to the runtime, its text upper-cased."""

from collections.abc import Callable

from fslm.graph.state import RunState, StageMessage
from fslm.nodes.prompt import compile_prompt, render_prompt, template_variables
from fslm.nodes.stage.node import generation_params
from fslm.runtime.types import GenerationRequest
from fslm_shout.record import ShoutRecord
from fslm_shout.spec import ShoutStageSpec


class ShoutMessage(StageMessage):
    shout: ShoutRecord


def make_shout_node(name: str, stage: ShoutStageSpec, submit: Callable) -> Callable[[RunState], dict]:
    template = compile_prompt(stage)

    def run_shout(state: RunState) -> dict:
        prompt = render_prompt(name, stage, template, template_variables(state))
        request = GenerationRequest(
            model=stage.shout,
            prompt=prompt,
            system=stage.system,
            chat_template=stage.chat_template,
            params=generation_params(stage.generation),
        )
        result = submit(request)
        text = result.text.upper()
        raised = sum(letter != loud for letter, loud in zip(result.text, text, strict=True))
        message = ShoutMessage(
            stage=name,
            text=text,
            model=stage.shout,
            adapter=None,
            prompt=prompt,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            seconds=round(result.seconds, 4),
            shout=ShoutRecord(written=result.text, raised=raised),
        )
        return {"outputs": {name: text}, "log": [message]}

    return run_shout
