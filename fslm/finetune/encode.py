"""Examples → token ids, through the same rendering path the runtime uses at inference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fslm.finetune.sources import Example
from fslm.nodes.prompt import compile_prompt, render_prompt
from fslm.nodes.stage.node import stage_request
from fslm.nodes.stage.spec import StageSpec
from fslm.runtime.prompt import encode_prompt as model_input


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
