"""Choosing ensemble members by the rules of *Determine-Then-Ensemble* (Yao et al. 2024).

The paper finds that an ensemble beats its best member only when its members are compatible: a member more
than about 10 points behind the best drags the ensemble down, and so does one whose answers are in another
style (much longer or much shorter). Vocabulary mattered little once top-k union is used, so it is reported
here but does not decide. The selection starts from the best candidate and adds every other candidate that
is within the score gap and the length ratio of that best one, best first.

This module is pure: it judges measured results; `fslm.eval.ensemble_check` measures them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_MAX_GAP = 0.10  # score points (scores are in [0, 1]): the paper's "about 10%"
DEFAULT_MAX_LENGTH_RATIO = 2.0


@dataclass(frozen=True)
class CandidateResult:
    """What was measured for one candidate on the dev set."""

    name: str
    score: float  # mean metric score, in [0, 1]
    answer_chars: float  # mean length of its answers, in characters (comparable across tokenizers)
    vocabulary: frozenset[bytes] = field(repr=False, compare=False)  # the text its tokens stand for


@dataclass(frozen=True)
class Verdict:
    candidate: CandidateResult
    gap: float  # the best candidate's score minus this one's, in score points
    length_ratio: float  # this candidate's mean answer length over the best one's
    vocabulary_overlap: float  # tokens (as text) shared with the best one: |A ∩ B| / |A ∪ B|
    chosen: bool
    reason: str


@dataclass(frozen=True)
class Recommendation:
    verdicts: list[Verdict]  # best candidate first, then by score
    max_gap: float
    max_length_ratio: float

    @property
    def members(self) -> list[str]:
        return [verdict.candidate.name for verdict in self.verdicts if verdict.chosen]

    @property
    def best(self) -> CandidateResult:
        return self.verdicts[0].candidate

    def summary(self) -> str:
        if len(self.members) == 1:
            text = (
                f"Use {self.best.name} alone: no other candidate is compatible with it, so an ensemble is "
                "expected to do worse than its best member."
            )
        else:
            members = " + ".join(self.members)
            text = f"Ensemble {members}: each is compatible with the best candidate, {self.best.name}."
        if self.best.score == 0:
            text += " No candidate scored above 0 on this data, so the scores say nothing about the ranking."
        return text


def recommend(
    candidates: Sequence[CandidateResult],
    max_gap: float = DEFAULT_MAX_GAP,
    max_length_ratio: float = DEFAULT_MAX_LENGTH_RATIO,
) -> Recommendation:
    """Judge each candidate against the best one (the highest score; the first given wins a tie)."""
    if len(candidates) < 2:
        raise ValueError("recommend needs at least two candidates")
    if max_gap < 0 or max_length_ratio < 1:
        raise ValueError("max_gap must be >= 0 and max_length_ratio >= 1")
    ranked = sorted(candidates, key=lambda candidate: -candidate.score)
    best = ranked[0]
    verdicts = [Verdict(best, 0.0, 1.0, 1.0, True, "the best score: the ensemble starts from it")]
    for candidate in ranked[1:]:
        gap = best.score - candidate.score
        ratio = _length_ratio(candidate.answer_chars, best.answer_chars)
        reason, chosen = _judge(best.name, gap, ratio, max_gap, max_length_ratio)
        verdicts.append(Verdict(candidate, gap, ratio, vocabulary_overlap(candidate, best), chosen, reason))
    return Recommendation(verdicts, max_gap, max_length_ratio)


def vocabulary_overlap(first: CandidateResult, second: CandidateResult) -> float:
    union = first.vocabulary | second.vocabulary
    return len(first.vocabulary & second.vocabulary) / len(union) if union else 1.0


def _length_ratio(chars: float, best_chars: float) -> float:
    if best_chars == 0:
        return 1.0 if chars == 0 else math.inf
    return chars / best_chars


def _judge(best: str, gap: float, ratio: float, max_gap: float, max_ratio: float) -> tuple[str, bool]:
    points, limit = 100 * gap, 100 * max_gap
    if gap > max_gap + 1e-9:
        return f"{points:.1f} points behind {best}, more than the {limit:g} allowed", False
    if not 1 / max_ratio <= ratio <= max_ratio:
        return (
            f"its answers are {ratio:.2f}× as long as {best}'s (allowed: {1 / max_ratio:.2g}× to "
            f"{max_ratio:g}×), another response style"
        ), False
    return f"{points:.1f} points behind {best} (≤ {limit:g}), answers {ratio:.2f}× as long", True
