"""From option log-likelihoods to a pick: normalised scores, probabilities over the options, the choice.

Plain Python (no torch): the node does this for each scorer's result, and the eval reads the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fslm.nodes.choices.record import ChoicesRecord, ScorerRecord


def normalised(
    logprobs: Sequence[float], tokens: Sequence[int], sizes: Sequence[int], how: str
) -> list[float]:
    """Each option's score: its summed log-probability (`none`), per token (`token`) or per byte (`byte`) of
    its text; `sizes` are the options' UTF-8 lengths."""
    if how == "none":
        return list(logprobs)
    divisors = tokens if how == "token" else sizes
    return [logprob / divisor for logprob, divisor in zip(logprobs, divisors, strict=True)]


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return [weight / total for weight in weights]


def argmax(values: Sequence[float]) -> int:
    """The first index of the largest value (numpy's and so lm-eval's tie rule)."""
    return max(range(len(values)), key=lambda index: (values[index], -index))


def scorer_record(
    label: str,
    logprobs: Sequence[float],
    tokens: Sequence[int],
    sizes: Sequence[int],
    how: str,
    pruned: Sequence[int] = (),
) -> ScorerRecord:
    """One model's scores and pick. `pruned` options (a best-first search's) hold upper bounds, which may
    equal the best sum (an option that extends the chosen one), so the pick is among the others."""
    scores = normalised(logprobs, tokens, sizes, how)
    cut = set(pruned)
    complete = [index for index in range(len(scores)) if index not in cut]
    chosen = complete[argmax([scores[index] for index in complete])]
    return ScorerRecord(
        model=label, logprobs=list(logprobs), tokens=list(tokens), scores=scores, chosen=chosen
    )


def choose(
    options: list[str], sizes: list[int], how: str, scorers: list[ScorerRecord], weights: Sequence[float]
) -> ChoicesRecord:
    """The stage's decision: each scorer's softmax over the options (of its normalised scores), averaged with
    `weights` (normalised to sum 1), and the option of highest probability. One scorer picks what its own
    scores pick."""
    total = sum(weights)
    probabilities = [0.0] * len(options)
    for scorer, weight in zip(scorers, weights, strict=True):
        for index, probability in enumerate(softmax(scorer["scores"])):
            probabilities[index] += weight / total * probability
    chosen = scorers[0]["chosen"] if len(scorers) == 1 else argmax(probabilities)
    return ChoicesRecord(
        options=options,
        bytes=sizes,
        normalize=how,
        probabilities=probabilities,
        chosen=chosen,
        scorers=scorers,
    )


def unsettled(record: ChoicesRecord, below: float) -> bool:
    """Whether a best-first record cannot tell if its pick's probability is below `below`. A pruned
    option's probability comes from an upper bound on its score, so the pick's probability in the record is
    a lower bound; leaving the pruned options out gives an upper bound. Between the two, only full scores
    decide."""
    pruned = set(record.get("pruned", []))
    if not pruned or record["probabilities"][record["chosen"]] >= below:
        return False
    scores = record["scorers"][0]["scores"]
    scored = [score for index, score in enumerate(scores) if index not in pruned]
    return softmax(scored)[scored.index(scores[record["chosen"]])] >= below
