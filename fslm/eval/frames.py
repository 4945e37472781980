"""Frames: what an extraction stage writes, parsed into fields, and scored as the slot-filling literature
scores it (intent accuracy, slot precision / recall / F1 over (slot, value) pairs, exact frame match).

A frame's text is `name: value` pairs separated by `;` or new lines (`intent: PlayMusic; artist: westbam`), or
a JSON object of names to values (a list value gives one pair per element). Names and values are compared
lowercased with runs of whitespace made one space. A part without a `:` is ignored, so an unparseable output
is a frame with no fields: wrong, never an error.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

INTENT = "intent"  # the field that names the frame's intent; every other field is a slot
Pair = tuple[str, str]


def frame_text(intent: str, slots: Iterable[Pair]) -> str:
    """The frame as a command parser writes it: the intent, then each slot as `name: value`."""
    return "; ".join(f"{name}: {value}" for name, value in [(INTENT, intent), *slots])


def parse_frame(text: str) -> list[Pair]:
    """The (name, value) pairs of a frame's text, in order; [] for text that holds none."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return [
                (_clean(str(name)), _clean(str(item)))
                for name, items in value.items()
                for item in (items if isinstance(items, list) else [items])
            ]
    pairs = []
    for part in stripped.replace("\n", ";").split(";"):
        name, colon, value = part.partition(":")
        if colon and _clean(name) and _clean(value):
            pairs.append((_clean(name), _clean(value)))
    return pairs


def _clean(text: str) -> str:
    return " ".join(text.lower().split())


def frame_scores(output: str, reference: str) -> dict[str, float]:
    """One item's `frame` (every field exactly right, none extra) and `intent` (the intent right) scores."""
    got, wanted = parse_frame(output), parse_frame(reference)
    return {
        "frame": float(Counter(got) == Counter(wanted)),
        "intent": float(_intent(got) is not None and _intent(got) == _intent(wanted)),
    }


def _intent(pairs: list[Pair]) -> str | None:
    return next((value for name, value in pairs if name == INTENT), None)


@dataclass(frozen=True)
class FieldCounts:
    """Slot pairs of one field name (or of all slots): right, written but wrong, and missed."""

    name: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        written = self.true_positives + self.false_positives
        return self.true_positives / written if written else 0.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 0.0

    @property
    def f1(self) -> float:
        return _f1(self.true_positives, self.false_positives, self.false_negatives)


def _f1(true_positives: int, false_positives: int, false_negatives: int) -> float:
    denominator = 2 * true_positives + false_positives + false_negatives
    return 2 * true_positives / denominator if denominator else 0.0


def _item_counts(output: str, reference: str) -> Counter[tuple[str, str]]:
    """Per slot name, ("tp" | "fp" | "fn", name) counts of one item (the intent left out)."""
    got = Counter(pair for pair in parse_frame(output) if pair[0] != INTENT)
    wanted = Counter(pair for pair in parse_frame(reference) if pair[0] != INTENT)
    counts: Counter[tuple[str, str]] = Counter()
    for (name, _), count in (got & wanted).items():
        counts["tp", name] += count
    for (name, _), count in (got - wanted).items():
        counts["fp", name] += count
    for (name, _), count in (wanted - got).items():
        counts["fn", name] += count
    return counts


def field_counts(pairs: Sequence[tuple[str, str]]) -> list[FieldCounts]:
    """Micro-averaged slot counts over (output, reference) items: all slots first, then each slot name by how
    often the references hold it."""
    totals: Counter[tuple[str, str]] = Counter()
    for output, reference in pairs:
        totals.update(_item_counts(output, reference))
    names = Counter({name: 0 for _, name in totals})
    for (kind, name), count in totals.items():
        if kind != "fp":
            names[name] += count
    rows = [
        FieldCounts(name, totals["tp", name], totals["fp", name], totals["fn", name])
        for name, _ in names.most_common()
    ]
    everything = FieldCounts(
        "all slots",
        sum(row.true_positives for row in rows),
        sum(row.false_positives for row in rows),
        sum(row.false_negatives for row in rows),
    )
    return [everything, *rows]


def slot_f1_interval(
    pairs: Sequence[tuple[str, str]], resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the micro slot F1, resampling items."""
    per_item = []
    for output, reference in pairs:
        counts = _item_counts(output, reference)
        per_item.append(
            tuple(
                sum(count for (kind, _), count in counts.items() if kind == wanted)
                for wanted in ("tp", "fp", "fn")
            )
        )
    generator = random.Random(seed)
    values = []
    for _ in range(resamples):
        sample = [per_item[generator.randrange(len(per_item))] for _ in per_item]
        values.append(_f1(*(sum(item[index] for item in sample) for index in range(3))))
    values.sort()
    return values[int(0.025 * resamples)], values[int(0.975 * resamples) - 1]
