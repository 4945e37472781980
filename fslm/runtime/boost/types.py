"""The request of a boosted ensemble generation: a plain frozen dataclass, free of torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from fslm.runtime.ensemble.types import EnsembleMember, EnsembleRequest
from fslm.runtime.types import GenerationParams


@dataclass(frozen=True)
class BoostRequest:
    """Generate `prompt` with the α-weighted mixture of the members' next-token distributions.

    Served as an `EnsembleGeneration` (see `fslm.runtime.ensemble.types`): each member's first pick, the
    steps and the steps on which the members' own picks differed."""

    serve_with: ClassVar[str] = "fslm.runtime.boost.serving:serve_boost"  # see `Runtime.submit`

    members: tuple[EnsembleMember, ...]
    prompt: str
    alphas: tuple[float, ...]  # one per member, each finite and > 0; normalised to sum 1 when mixing
    top_k: int = 10  # members with different tokenizers: the union of each one's top-k is voted on
    system: str | None = None
    chat_template: bool = True
    params: GenerationParams = field(default_factory=GenerationParams)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a boosted ensemble needs at least one member")
        if len(self.alphas) != len(self.members):
            raise ValueError("give one alpha per member")
        if not all(math.isfinite(alpha) and alpha > 0 for alpha in self.alphas):
            raise ValueError("every alpha must be finite and > 0")

    @property
    def weights(self) -> tuple[float, ...]:
        total = sum(self.alphas)
        return tuple(alpha / total for alpha in self.alphas)

    def as_ensemble(self) -> EnsembleRequest:
        """The same request for the UniTE decoder, whose weighted union average is this mixture restricted to
        the members' top-k tokens (members with different tokenizers cannot share a vocabulary)."""
        return EnsembleRequest(
            members=self.members,
            prompt=self.prompt,
            weights=self.alphas,
            top_k=self.top_k,
            system=self.system,
            chat_template=self.chat_template,
            params=self.params,
        )
