"""Examples → token ids, through the same rendering path the runtime uses at inference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fslm.finetune.sources import Example
from fslm.nodes.choices.spec import CHOICE_VARIABLE, ChoiceStageSpec
from fslm.nodes.prompt import compile_prompt, render_prompt
from fslm.nodes.stage.node import stage_request
from fslm.nodes.stage.spec import StageSpec
from fslm.runtime.prompt import encode_prompt as model_input
from fslm.runtime.scoring import ScoreRequest
from fslm.runtime.scoring.encoding import encode_request
from fslm.spec.templates import compile_template, render_template


@dataclass(frozen=True)
class Encoded:
    prompt_ids: list[int]
    completion_ids: list[int]  # the target's tokens and the end-of-sequence token; the loss covers these only

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


class StageEncoder:
    """Renders a stage's prompt from an example's variables exactly as the stage node and runtime do."""

    def __init__(self, name: str, stage: StageSpec, tokenizer: Any) -> None:
        self.name = name
        self.stage = stage
        self.tokenizer = tokenizer
        self.template = compile_prompt(stage)
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no end-of-sequence token, so a completion cannot be ended")
        self.eos_id = int(tokenizer.eos_token_id)

    def prompt_ids(self, variables: dict[str, str]) -> list[int]:
        prompt = render_prompt(self.name, self.stage, self.template, variables)
        return model_input(self.tokenizer, stage_request(self.stage, prompt))[1]

    def completion_ids(self, target: str) -> list[int]:
        # The runtime strips what a stage writes, so surrounding whitespace is never part of a target.
        return [*self.tokenizer(target.strip(), add_special_tokens=False)["input_ids"], self.eos_id]

    def encode(self, example: Example) -> Encoded:
        return Encoded(self.prompt_ids(example.variables), self.completion_ids(example.target))


class ChoiceEncoder:
    """A choices stage's example: its prompt, then the gold option (the example's target) appended with the
    stage's continuation template, split into tokens exactly as the runtime scores them (lm-eval's pair
    encoding). The loss covers the continuation's tokens; no end-of-sequence token follows, since an option is
    scored without one."""

    def __init__(self, name: str, stage: ChoiceStageSpec, tokenizer: Any) -> None:
        assert stage.model is not None  # a tunable choices stage runs on one model
        self.name = name
        self.stage = stage
        self.model = stage.model
        self.tokenizer = tokenizer
        self.template = compile_prompt(stage)
        self.continuation = compile_template(stage.continuation, f"stage '{name}': its continuation template")

    def encode(self, example: Example) -> Encoded:
        prompt = render_prompt(self.name, self.stage, self.template, example.variables)
        variables = {**example.variables, CHOICE_VARIABLE: example.target}
        continuation = render_template(self.continuation, variables, f"stage '{self.name}': its continuation")
        request = ScoreRequest(
            self.model,
            prompt,
            (continuation,),
            system=self.stage.system,
            chat_template=self.stage.chat_template,
        )
        encoded = encode_request(self.tokenizer, request, max_length=None)
        return Encoded(list(encoded.context_ids), list(encoded.continuation_ids[0]))


def stage_encoder(
    name: str, stage: StageSpec | ChoiceStageSpec, tokenizer: Any
) -> StageEncoder | ChoiceEncoder:
    """The encoder for a tunable stage of either kind."""
    if isinstance(stage, ChoiceStageSpec):
        return ChoiceEncoder(name, stage, tokenizer)
    return StageEncoder(name, stage, tokenizer)
