"""The state a pipeline run carries through the graph: small, plain and serialisable."""

import operator
from typing import Annotated, NotRequired, TypedDict

from fslm.nodes.choices.record import ChoicesRecord
from fslm.nodes.router.record import RouterRecord
from fslm.spec.run_input import RunInput


class EnsembleRecord(TypedDict):
    """How an ensemble stage's members voted: per member (in `members` order) the first token it alone would
    have produced and the prompt form it got; how many steps ran and on how many the members disagreed."""

    members: list[str]
    first_tokens: list[str]
    templates: list[str]
    steps: int
    disagreements: int
    weights: NotRequired[list[float]]  # a boost stage's: each member's α, normalised to sum 1


class StageMessage(TypedDict):
    """What one stage told the next: its text and how it was produced."""

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
    ensemble: NotRequired[EnsembleRecord]  # set by an ensemble stage
    choices: NotRequired[ChoicesRecord]  # set by a choices stage
    router: NotRequired[RouterRecord]  # set by a router stage


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
