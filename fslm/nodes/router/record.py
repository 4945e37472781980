"""What a router stage records in its stage message (`StageMessage["router"]`): plain, serialisable."""

from __future__ import annotations

from typing import TypedDict


class RouterRecord(TypedDict):
    """How the router chose. Lists are in `experts` order.

    - `probabilities`: the router's distribution over the experts (learned: the encoder's softmax; rank: the
      experts' confidences normalised to sum 1; random and fixed: the uniform or one-hot distribution they
      draw from).
    - `scores`: what the choice maximised: the probability minus `cost_weight` × normalised cost (learned),
      each expert's own confidence (rank), else the probabilities.
    - `calls`: expert calls spent (1, or every expert for rank); `seconds`: the router's own time, without
      the experts'.
    """

    method: str
    experts: list[str]
    probabilities: list[float]
    scores: list[float]
    chosen: str
    calls: int
    seconds: float
