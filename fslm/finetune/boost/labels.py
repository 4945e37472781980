"""The weak side of weak-to-strong: the hard items labelled for the strong stage by the weak ensemble's first
member alone (the classic single weak supervisor), by the α-weighted ensemble, and by gold; and the two weak
systems' per-item scores on the test items.

A choices stage's labels are the options picked from the members' option probabilities (measured while
boosting); a text stage's are greedy answers written through the runtime (`writing`), scored against the gold
answers by one of fslm eval's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.eval.metrics import score
from fslm.finetune.boost.measure import mixed, picks
from fslm.finetune.boost.rounds import Boosted
from fslm.finetune.boost.task import BoostExample
from fslm.finetune.boost.writing import StageWriter
from fslm.finetune.sources import Example
from fslm.spec import PipelineSpec


@dataclass(frozen=True)
class WeakLabels:
    # the strong stage's hard examples by label set: single, ensemble, gold
    training: dict[str, list[BoostExample]]
    scores: dict[str, list[float]]  # per test item: weak_single's and weak_ensemble's scores
    agreement: dict[str, float]  # the single and the ensemble labels' mean score against the gold labels

    def records(self) -> list[dict[str, Any]]:
        """Per hard item, its variables and each label set's answer."""
        gold = self.training["gold"]
        return [
            {"variables": item.example.variables}
            | {name: examples[index].example.target for name, examples in self.training.items()}
            for index, item in enumerate(gold)
        ]


def choice_labels(boosted: Boosted, hard: list[BoostExample], test: list[BoostExample]) -> WeakLabels:
    """Labels and scores from the members' option probabilities on the hard (`measured["hard"]`) and test
    items (`measured["test"]`); `hard` holds the strong stage's examples of the hard items."""
    measured = boosted.measured
    chosen = {
        "single": picks(measured["hard"][0].probabilities or []),
        "ensemble": picks(mixed([m.probabilities or [] for m in measured["hard"]], boosted.alphas)),
        "gold": [item.gold for item in hard],
    }
    single_test = picks(measured["test"][0].probabilities or [])
    ensemble_test = picks(mixed([m.probabilities or [] for m in measured["test"]], boosted.alphas))
    return WeakLabels(
        training={
            name: [_picked(item, option) for item, option in zip(hard, options, strict=True)]
            for name, options in chosen.items()
        },
        scores={
            "weak_single": correct_picks(single_test, test),
            "weak_ensemble": correct_picks(ensemble_test, test),
        },
        agreement={
            name: sum(a == b for a, b in zip(chosen[name], chosen["gold"], strict=True)) / len(hard)
            for name in ("single", "ensemble")
        },
    )


def text_labels(
    spec: PipelineSpec,
    stage_name: str,
    boosted: Boosted,
    hard: tuple[list[BoostExample], list[BoostExample]],
    test: list[BoostExample],
    metric: str,
) -> WeakLabels:
    """Labels and scores from the weak members' greedy answers: the first member's alone, and the α-weighted
    mixture's of all of them. `hard` holds the weak and the strong stage's examples of the hard items."""
    hard_weak, hard_strong = hard
    items = [*hard_weak, *test]
    with StageWriter(spec, stage_name) as writer:
        single = writer.alone(boosted.adapters[0], items)
        ensemble = writer.mixture(boosted.adapters, boosted.alphas, items)
    split = len(hard_weak)
    labels = {"single": single[:split], "ensemble": ensemble[:split]}
    training = {
        name: [_written(item, text) for item, text in zip(hard_strong, texts, strict=True)]
        for name, texts in labels.items()
    }
    return WeakLabels(
        training=training | {"gold": hard_strong},
        scores={
            "weak_single": text_scores(metric, single[split:], test),
            "weak_ensemble": text_scores(metric, ensemble[split:], test),
        },
        agreement={
            name: sum(text_scores(metric, texts, hard_strong)) / len(hard_strong)
            for name, texts in labels.items()
        },
    )


def strong_text_scores(
    spec: PipelineSpec, stage_name: str, adapters: dict[str, Path], test: list[BoostExample], metric: str
) -> dict[str, list[float]]:
    """Per named adapter of the strong stage, its greedy answers' scores on the test items."""
    with StageWriter(spec, stage_name) as writer:
        return {
            name: text_scores(metric, writer.alone(adapter, test), test) for name, adapter in adapters.items()
        }


def text_scores(metric: str, texts: Sequence[str], examples: Sequence[BoostExample]) -> list[float]:
    return [score(metric, text, item.references) for text, item in zip(texts, examples, strict=True)]


def _picked(item: BoostExample, option: int) -> BoostExample:
    return BoostExample(Example(item.example.variables, item.options[option]), item.options, option)


def _written(item: BoostExample, text: str) -> BoostExample:
    return BoostExample(Example(item.example.variables, text))


def correct_picks(chosen: list[int], examples: list[BoostExample]) -> list[float]:
    return [float(pick == item.gold) for pick, item in zip(chosen, examples, strict=True)]
