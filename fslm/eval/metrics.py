"""Scoring a generated text against a reference: answer extraction and the metrics `fslm eval` offers.

Every metric returns a score in [0, 1]. A reference may be a list of accepted answers; the best one counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

from fslm.eval.frames import frame_scores, parse_frame

MetricName = Literal["choice", "exact", "numeric", "contains", "f1", "frame"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
# A number as people write it: optional sign, thousands separators, decimals ("-1,234.50", "$3", ".5").
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_CHOICE_PATTERNS = [
    # "answer is (B)", "Answer: B", "answer: b." — an explicit statement wins over any other letter.
    re.compile(r"answer\s*(?:is|:)?\s*:?\s*\(?([A-Ea-e])\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-E])[).:\s]"),  # starts with "B)", "(B)", "B." or "B "
    re.compile(r"^\s*\(?([A-Ea-e])\)?\s*$"),  # the whole text is the letter
    re.compile(r"\(([A-Ea-e])\)"),  # "(C)" anywhere
    re.compile(r"\b([A-E])\b"),  # any standalone capital A-E
]


def normalize_text(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse whitespace."""
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", without_punctuation).split())


def extract_choice(text: str) -> str | None:
    """The option letter a text picks (A to E), or None."""
    for pattern in _CHOICE_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1).upper()
    return None


def extract_number(text: str) -> float | None:
    """The answer number of a text: the first after a GSM8K-style `####` if there is one, else the last."""
    marked = _NUMBER.findall(text.rsplit("####", 1)[1]) if "####" in text else []
    numbers = marked[:1] or _NUMBER.findall(text)[-1:]
    return float(numbers[0].replace(",", "")) if numbers else None


def _choice(output: str, reference: str) -> float:
    picked, wanted = extract_choice(output), extract_choice(reference)
    return float(picked is not None and picked == wanted)


def _numeric(output: str, reference: str) -> float:
    got, wanted = extract_number(output), extract_number(reference)
    return float(got is not None and wanted is not None and abs(got - wanted) <= 1e-6 * max(1.0, abs(wanted)))


def _exact(output: str, reference: str) -> float:
    return float(normalize_text(output) == normalize_text(reference))


def _contains(output: str, reference: str) -> float:
    wanted = normalize_text(reference)
    return float(bool(wanted) and f" {wanted} " in f" {normalize_text(output)} ")


def _f1(output: str, reference: str) -> float:
    got, wanted = normalize_text(output).split(), normalize_text(reference).split()
    common = sum((Counter(got) & Counter(wanted)).values())
    if not got or not wanted or common == 0:
        return float(got == wanted)
    precision, recall = common / len(got), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


METRICS: dict[str, Callable[[str, str], float]] = {
    "choice": _choice,
    "exact": _exact,
    "numeric": _numeric,
    "contains": _contains,
    "f1": _f1,
    "frame": lambda output, reference: frame_scores(output, reference)["frame"],
}


def score(metric: str, output: str, reference: str | Sequence[str]) -> float:
    """`output` scored by `metric` against `reference` (the best of several accepted answers)."""
    references = [reference] if isinstance(reference, str) else list(reference)
    return max((METRICS[metric](output, str(wanted)) for wanted in references), default=0.0)


def extracted(metric: str, output: str) -> str:
    """What `metric` reads from `output`, to show next to the score."""
    if metric == "choice":
        return extract_choice(output) or ""
    if metric == "numeric":
        number = extract_number(output)
        return "" if number is None else f"{number:g}"
    if metric == "frame":
        return "; ".join(f"{name}: {value}" for name, value in parse_frame(output))
    return normalize_text(output)
