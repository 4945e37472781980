"""The runtime's request and result types: plain frozen dataclasses, free of torch."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
FINISH_REASONS = ("eos", "stop", "length")


@dataclass(frozen=True)
class ModelRef:
    """What the runtime needs to know about a named model handle."""

    source: str
    dtype: str = "auto"  # "auto" (bfloat16 on CUDA, else float32) | "float32" | "bfloat16" | "float16"
    revision: str | None = None
    device: str = "auto"  # "auto" (CUDA, else MPS, else CPU) | "cpu" | "cuda" | "cuda:N" | "mps"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")


@dataclass(frozen=True)
class GenerationRequest:
    model: str  # a handle: a key of the models mapping given to Runtime
    prompt: str  # the stage's rendered prompt text
    adapter: str | None = None  # path of a peft LoRA adapter directory, or None for the base model
    system: str | None = None  # optional system message, used only with chat_template
    chat_template: bool = True  # wrap prompt as a user message with the tokenizer's chat template
    params: GenerationParams = field(default_factory=GenerationParams)
    # Called from the decoding thread with each new piece of completion text, for streaming.
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Generation:
    text: str  # completion, cut before the first stop string, EOS removed, stripped
    prompt_text: str  # the exact text fed to the model (after the chat template)
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # wall time from the start of its prefill to its last token
    finish_reason: str  # "eos" | "stop" | "length"
    cached_prompt_tokens: int = 0  # leading prompt tokens reused from the prefix cache, not computed again
    # The log-probability of each generated token (end-of-sequence and stop-string tokens included) under the
    # model's untempered distribution; plain generation fills it, the ensemble decoders leave it empty.
    token_logprobs: tuple[float, ...] = ()
