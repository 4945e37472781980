"""The state a pipeline run carries through the graph: small, plain and serialisable."""

import operator
from typing import Annotated, NotRequired, TypedDict

from fslm.spec.run_input import RunInput


class StageMessage(TypedDict):
    """What one stage told the next: its text and how it was produced. A stage of a kind that records more
    (a choice stage's options and scores) adds it under a key of its own: the kind's `records`
    (fslm/spec/kind_hooks.py) name those keys and say how each is shown."""

    stage: str
    text: str
    model: str
    adapter: str | None
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    edited: NotRequired[bool]  # set on a message a user replaced when replaying a run
    cached_prompt_tokens: NotRequired[int]  # leading prompt tokens the runtime reused from its prefix cache


class TokenChunk(TypedDict):
    """New text from a stage that is still generating (streamed with `tokens=True`)."""

    stage: str
    token: str


# A run's configurable key asking stages to stream their text as it is generated, as `TokenChunk`s.
STREAM_TOKENS = "fslm_stream_tokens"


def merge_outputs(current: dict[str, str], update: dict[str, str]) -> dict[str, str]:
    return {**current, **update}


class RunState(TypedDict):
    input: RunInput
    outputs: Annotated[dict[str, str], merge_outputs]
    log: Annotated[list[StageMessage], operator.add]
