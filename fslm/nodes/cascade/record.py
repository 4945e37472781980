"""What a cascade stage records in its stage message (`StageMessage["cascade"]`): plain, serialisable."""

from __future__ import annotations

from typing import TypedDict


class CascadeStep(TypedDict):
    """One step that ran: its confidence in its pick, the threshold it had to reach (None for the last step,
    which always answers) and the wall seconds its node took."""

    stage: str
    confidence: float
    threshold: float | None
    seconds: float


class CascadeRecord(TypedDict):
    """How the cascade answered: every step it could run (`stages`, cheapest first), the steps that ran, and
    the one that answered (the last that ran)."""

    confidence: str  # the measure: "probability" | "margin"
    stages: list[str]
    steps: list[CascadeStep]
    answered: str
