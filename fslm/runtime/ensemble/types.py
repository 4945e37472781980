"""Request and result types of an ensemble generation: plain frozen dataclasses, free of torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fslm.runtime.types import Generation, GenerationParams


@dataclass(frozen=True)
class EnsembleMember:
    model: str  # a model handle
    adapter: str | None = None  # a peft adapter directory, or None for the base model

    @property
    def label(self) -> str:
        return self.model if self.adapter is None else f"{self.model}+{self.adapter}"


@dataclass(frozen=True)
class EnsembleRequest:
    serve_with: ClassVar[str] = "fslm.runtime.ensemble.serving:serve_ensemble"  # see `Runtime.submit`

    members: tuple[EnsembleMember, ...]
    prompt: str
    weights: tuple[float, ...] = ()  # one per member, normalised to sum 1; empty means equal weights
    top_k: int = 10
    primary: int = 0  # index of the member whose tokenizer counts tokens
    system: str | None = None
    chat_template: bool = True
    params: GenerationParams = field(default_factory=GenerationParams)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if self.top_k < 1:
            raise ValueError("top_k must be >= 1")
        if self.weights and len(self.weights) != len(self.members):
            raise ValueError("give one weight per member")
        if any(weight <= 0 for weight in self.weights):
            raise ValueError("weights must be > 0")
        if not 0 <= self.primary < len(self.members):
            raise ValueError("primary must index a member")

    @property
    def normalised_weights(self) -> tuple[float, ...]:
        weights = self.weights or (1.0,) * len(self.members)
        total = sum(weights)
        return tuple(weight / total for weight in weights)


@dataclass(frozen=True)
class EnsembleGeneration:
    generation: Generation  # text, and tokens as counted by the primary's tokenizer
    first_tokens: tuple[str, ...]  # per member: the first token it alone would have produced
    disagreements: int  # decoding steps on which the members' top-1 tokens differed
    steps: int  # decoding steps (one chosen token each)
    templates: tuple[str, ...]  # per member: "chat template" or "raw prompt"
