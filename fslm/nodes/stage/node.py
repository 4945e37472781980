"""The `stage` graph node: one small LM, one prompt template, one task."""

import contextvars
from collections.abc import Callable
from typing import NotRequired

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer

from fslm.graph.state import STREAM_TOKENS, RunState, StageMessage, TokenChunk
from fslm.nodes.prompt import compile_prompt, render_prompt, template_variables
from fslm.nodes.stage.record import TokenLogprobs, token_logprobs
from fslm.nodes.stage.spec import StageSpec
from fslm.runtime.types import Generation, GenerationParams, GenerationRequest
from fslm.spec import GenerationSpec

Generate = Callable[[GenerationRequest], Generation]


class GeneratedMessage(StageMessage):
    logprobs: NotRequired[TokenLogprobs]  # absent when the runtime returned no token log-probabilities


def generation_params(generation: GenerationSpec) -> GenerationParams:
    return GenerationParams(
        max_new_tokens=generation.max_new_tokens,
        temperature=generation.temperature,
        top_p=generation.top_p,
        stop=tuple(generation.stop),
        seed=generation.seed,
    )


def stage_request(
    stage: StageSpec, prompt: str, on_text: Callable[[str], None] | None = None
) -> GenerationRequest:
    return GenerationRequest(
        model=stage.model,
        prompt=prompt,
        adapter=str(stage.adapter) if stage.adapter else None,
        system=stage.system,
        chat_template=stage.chat_template,
        params=generation_params(stage.generation),
        on_text=on_text,
    )


def make_stage_node(
    name: str, stage: StageSpec, generate: Generate
) -> Callable[[RunState, RunnableConfig], dict]:
    template = compile_prompt(stage)

    def run_stage(state: RunState, config: RunnableConfig) -> dict:
        prompt = render_prompt(name, stage, template, template_variables(state))
        on_text = None
        if config["configurable"].get(STREAM_TOKENS):
            writer = get_stream_writer()
            # The runtime calls back from its own thread; LangGraph's writer needs this run's context.
            context = contextvars.copy_context()

            def on_text(text: str) -> None:
                context.run(writer, TokenChunk(stage=name, token=text))

        request = stage_request(stage, prompt, on_text)
        result = generate(request)
        message = GeneratedMessage(
            stage=name,
            text=result.text,
            model=stage.model,
            adapter=request.adapter,
            prompt=request.prompt,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            seconds=round(result.seconds, 4),
            cached_prompt_tokens=result.cached_prompt_tokens,
        )
        if (logprobs := token_logprobs(result.token_logprobs)) is not None:
            message["logprobs"] = logprobs
        return {"outputs": {name: result.text}, "log": [message]}

    run_stage.__name__ = f"stage_{name}"
    return run_stage
