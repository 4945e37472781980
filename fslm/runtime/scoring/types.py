"""Request and result types of option scoring: plain frozen dataclasses, free of torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ScoreRequest:
    """Score each continuation after one prompt: log P(continuation | prompt), as lm-eval-harness's
    `loglikelihood(context, continuation)` computes it (see `fslm.runtime.scoring.encoding`)."""

    serve_with: ClassVar[str] = "fslm.runtime.scoring.serving:serve_scores"  # see `Runtime.submit`

    model: str  # a model handle
    prompt: str  # the stage's rendered prompt text: the context
    continuations: tuple[str, ...]  # the texts to score, each appended to the context on its own
    adapter: str | None = None  # a peft adapter directory, or None for the base model
    system: str | None = None  # optional system message, used only with chat_template
    chat_template: bool = False  # wrap the prompt as a user message, then the assistant's generation prompt
    best_first: bool = False  # find the best summed log-probability by search, not score every option

    def __post_init__(self) -> None:
        if not self.continuations:
            raise ValueError("a score request needs at least one continuation")


@dataclass(frozen=True)
class OptionScores:
    """Per continuation (in request order): its summed log-probability and its token count."""

    logprobs: tuple[float, ...]
    tokens: tuple[int, ...]
    prompt_text: str  # the exact context text fed to the model (after the chat template)
    prompt_tokens: int
    seconds: float  # wall time of the batch that served it
    cached_prompt_tokens: int = 0  # leading prompt tokens whose states came from the prefix cache
    pruned: tuple[
        int, ...
    ] = ()  # best-first only: options whose logprobs are the upper bounds they were cut at
