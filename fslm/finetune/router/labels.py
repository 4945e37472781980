"""Zooter's labels: each query's softmax over its experts' rewards, smoothed towards its tags' mean labels."""

from __future__ import annotations

import math
from collections.abc import Sequence


def softmax_labels(rewards: Sequence[Sequence[float]], temperature: float) -> list[list[float]]:
    labels = []
    for row in rewards:
        top = max(row)
        weights = [math.exp((value - top) / temperature) for value in row]
        total = sum(weights)
        labels.append([weight / total for weight in weights])
    return labels


def flat_items(rewards: Sequence[Sequence[float]]) -> int:
    """How many queries gave every expert the same reward (their label is uniform: nothing to learn)."""
    return sum(1 for row in rewards if max(row) == min(row))


def tag_enhanced(
    labels: Sequence[Sequence[float]], tags: Sequence[Sequence[str]], beta: float
) -> list[list[float]]:
    """β × the query's label + (1 − β) × the mean over its tags of each tag's mean label (over the queries
    carrying it). A query without tags keeps its own label."""
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for label, carried in zip(labels, tags, strict=True):
        for tag in set(carried):
            total = sums.setdefault(tag, [0.0] * len(label))
            sums[tag] = [value + part for value, part in zip(total, label, strict=True)]
            counts[tag] = counts.get(tag, 0) + 1
    enhanced = []
    for label, carried in zip(labels, tags, strict=True):
        unique = sorted(set(carried))
        if not unique:
            enhanced.append(list(label))
            continue
        means = [[value / counts[tag] for value in sums[tag]] for tag in unique]
        smoothed = [sum(mean[index] for mean in means) / len(means) for index in range(len(label))]
        enhanced.append([beta * own + (1 - beta) * tag for own, tag in zip(label, smoothed, strict=True)])
    return enhanced


def keyword_tags(query: str, rules: dict[str, list[str]]) -> list[str]:
    lowered = query.lower()
    return [tag for tag, keywords in rules.items() if any(word.lower() in lowered for word in keywords)]


def entropy(distribution: Sequence[float]) -> float:
    """In nats."""
    return -sum(value * math.log(value) for value in distribution if value > 0)
