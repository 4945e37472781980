"""Zooter where the experts differ: a router over {SmolLM2 tuned, Gemma-3-270m tuned} on a mixed stream of
the SST-2, AG News, TREC, Banking77 and SNIPS (intent) dev items (3,472; Banking77's first 400, the others'
whole dev splits), each item answered by its task's adapter on the chosen base.

The experts' per-item results come from bench/combine_tasks.py (bench/results/combine_TASK_items.jsonl): each
base's tuned choice stage ran on every dev item, with its measured seconds per item. Those files hold whether
each pick was right, not the gold option's probability, so the router's reward is correctness (the `acc`
reward): a query's label is the softmax of its two rewards (temperature 1), flat where both experts agree.

Nothing is fitted on the items it is scored on: a 2-fold cross-fit (items shuffled with seed 0) trains the
router (frozen all-MiniLM-L6-v2 and a linear head, `fslm.finetune.router.train_router` with the recipe's
defaults: 30 epochs, 20% of the training fold picking the epoch) on one fold and routes the other.
Compared on the same items, with Wilson 95% intervals and exact McNemar tests:
- each expert alone; the oracle (right when either is);
- the router's argmax; random routing sending the same share of items to Gemma (its expected accuracy);
- by task: every item to the expert that was better on its task in the training fold;
- the confidence cascade SmolLM2 → Gemma escalating the same share (SmolLM2's least confident items).
And the curves over the share sent to Gemma (router by p(Gemma) − p(SmolLM2), cascade by SmolLM2's
confidence): the area between each curve and random routing of the same share, with a 95% bootstrap interval.
Cost is measured seconds per item: the experts' from the combine runs, the router's encoder timed here.

Usage: python bench/zooter_tasks.py [--bootstrap 2000]
Writes bench/results/zooter_tasks.md.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
from cascade_piqa import percent, with_interval
from common import RESULTS, read_jsonl, record
from zooter_cost import distributions

from fslm.eval.stats import paired
from fslm.finetune.router.labels import softmax_labels
from fslm.finetune.router.recipe import RouterTrainSpec
from fslm.finetune.router.train import split, train_router
from fslm.runtime.router.checkpoint import DEFAULT_ENCODER
from fslm.runtime.router.model import RouterModel

TASKS = {"sst2": "text", "agnews": "text", "trec": "question", "banking77": "text", "snips": "text"}
EXPERTS = ("smol", "gemma")
FOLDS = 2
SEED = 0


def load_items() -> list[dict]:
    items = []
    for task, field in TASKS.items():
        for row in read_jsonl(RESULTS / f"combine_{task}_items.jsonl"):
            items.append(
                {
                    "task": task,
                    "query": row[field],
                    "correct": [float(row[name]["correct"]) for name in EXPERTS],
                    "seconds": [row[name]["seconds"] for name in EXPERTS],
                    "smol_confidence": row["smol"]["confidence"],
                }
            )
    return items


def fold_of(count: int) -> np.ndarray:
    """Each item's fold: a seeded shuffle dealt round-robin."""
    order = list(range(count))
    random.Random(SEED).shuffle(order)
    folds = np.zeros(count, dtype=int)
    for position, index in enumerate(order):
        folds[index] = position % FOLDS
    return folds


def cross_fit_router(items: list[dict], folds_of: np.ndarray) -> tuple[np.ndarray, float]:
    """p(expert) per item from a router that never saw it, and the encoder's seconds per query."""
    folds = [np.flatnonzero(folds_of == k).tolist() for k in range(FOLDS)]
    probabilities = np.zeros((len(items), len(EXPERTS)))
    spec = RouterTrainSpec()
    encoder_seconds = 0.0
    for k, scored in enumerate(folds):
        trained = [index for fold in folds[:k] + folds[k + 1 :] for index in fold]
        rewards = [items[index]["correct"] for index in trained]
        model = RouterModel.from_encoder(DEFAULT_ENCODER, len(EXPERTS), max_length=128, seed=spec.seed)
        parts = split(len(trained), spec.held_out, spec.seed)
        queries = [items[index]["query"] for index in trained]
        train_router(model, queries, softmax_labels(rewards, 1.0), rewards, parts, spec, train_encoder=False)
        started = time.perf_counter()
        probabilities[scored] = distributions(model, [items[index]["query"] for index in scored])
        encoder_seconds += time.perf_counter() - started
    return probabilities, encoder_seconds / len(items)


def by_task(items: list[dict], folds_of: np.ndarray) -> np.ndarray:
    """The expert index per item: the better one on its task in the other fold."""
    correct = np.array([item["correct"] for item in items])
    tasks = np.array([item["task"] for item in items])
    chosen = np.zeros(len(items), dtype=int)
    for task in TASKS:
        for fold in range(FOLDS):
            scored = (tasks == task) & (folds_of == fold)
            trained = (tasks == task) & (folds_of != fold)
            chosen[scored] = int(np.argmax(correct[trained].mean(axis=0)))
    return chosen


def ranked_share_curve(correct: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Accuracy when the first j items of `order` go to Gemma and the rest to SmolLM2, for j = 0..n."""
    gains = correct[order, 1] - correct[order, 0]
    return (correct[:, 0].sum() + np.concatenate([[0.0], np.cumsum(gains)])) / len(correct)


def area_over_random(correct: np.ndarray, curve: np.ndarray) -> float:
    """Mean over shares 0..1 of `curve` minus random routing of the same share, in accuracy (fraction)."""
    shares = np.linspace(0.0, 1.0, len(curve))
    random_line = correct[:, 0].mean() + shares * (correct[:, 1].mean() - correct[:, 0].mean())
    return float(np.trapezoid(curve - random_line, shares))


def order_of(score: np.ndarray) -> np.ndarray:
    """Items by `score`, highest first: the order in which they go to Gemma."""
    return np.argsort(-score, kind="stable")


def bootstrap_area(correct: np.ndarray, score: np.ndarray, rounds: int) -> tuple[float, float]:
    generator = np.random.default_rng(SEED)
    areas = []
    for _ in range(rounds):
        sample = generator.integers(0, len(correct), len(correct))
        resampled = correct[sample]
        areas.append(area_over_random(resampled, ranked_share_curve(resampled, order_of(score[sample]))))
    return float(np.percentile(areas, 2.5)), float(np.percentile(areas, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    items = load_items()
    correct = np.array([item["correct"] for item in items])
    seconds = np.array([item["seconds"] for item in items])
    folds_of = fold_of(len(items))
    probabilities, encoder_seconds = cross_fit_router(items, folds_of)
    routed = probabilities.argmax(axis=1)
    share = float(routed.mean())
    router_score = probabilities[:, 1] - probabilities[:, 0]
    cascade_score = -np.array([item["smol_confidence"] for item in items])  # least confident escalate first
    escalated = np.zeros(len(items), dtype=int)
    escalated[order_of(cascade_score)[: int(routed.sum())]] = 1
    rows_index = np.arange(len(items))
    systems = {
        "SmolLM2 tuned alone": (correct[:, 0], seconds[:, 0], 0.0),
        "Gemma tuned alone": (correct[:, 1], seconds[:, 1], 1.0),
        "oracle (right when either is)": (correct.max(axis=1), seconds.sum(axis=1), float("nan")),
        "Zooter router (argmax), cross-fit": (
            correct[rows_index, routed],
            seconds[rows_index, routed] + encoder_seconds,
            share,
        ),
        "by task (better expert on the task's training fold)": _chosen(
            correct, seconds, by_task(items, folds_of)
        ),
        "cascade SmolLM2 → Gemma, same share escalated": (
            correct[rows_index, escalated],
            seconds[:, 0] + escalated * seconds[:, 1],
            share,
        ),
    }
    gemma = correct[:, 1]
    table = []
    for name, (right, cost, to_gemma) in systems.items():
        versus = paired(right.tolist(), gemma.tolist())
        table.append(
            {
                "system": name,
                "acc % [95%]": with_interval(right.tolist()),
                "to Gemma %": "" if np.isnan(to_gemma) else percent(to_gemma),
                "s/item": f"{cost.mean():.4f}",
                "vs Gemma: W / L (p)": f"{versus.wins} / {versus.losses} ({versus.p_value:.3f})",
            }
        )
    random_at_share = (1 - share) * correct[:, 0].mean() + share * gemma.mean()
    router_curve = ranked_share_curve(correct, order_of(router_score))
    cascade_curve = ranked_share_curve(correct, order_of(cascade_score))
    router_area = area_over_random(correct, router_curve)
    cascade_area = area_over_random(correct, cascade_curve)
    router_low, router_high = bootstrap_area(correct, router_score, args.bootstrap)
    cascade_low, cascade_high = bootstrap_area(correct, cascade_score, args.bootstrap)
    per_task = []
    counts = ", ".join(f"{task} {sum(item['task'] == task for item in items)}" for task in TASKS)
    for task in TASKS:
        mask = np.array([item["task"] == task for item in items])
        per_task.append(
            f"{task}: SmolLM2 {percent(correct[mask, 0].mean())}, Gemma {percent(gemma[mask].mean())}, "
            f"router sends {percent(routed[mask].mean())}% to Gemma and scores "
            f"{percent(correct[mask][np.arange(mask.sum()), routed[mask]].mean())}"
        )
    random_line = (
        f"Random routing of the router's share ({percent(share)}% to Gemma): "
        + f"{percent(random_at_share)}% expected."
    )
    areas = (
        "Area over random routing of the same share (accuracy points, shares 0 to 100%): "
        f"router {100 * router_area:+.2f} [{100 * router_low:+.2f}, {100 * router_high:+.2f}]; "
        f"cascade {100 * cascade_area:+.2f} [{100 * cascade_low:+.2f}, {100 * cascade_high:+.2f}] "
        f"(95% bootstrap, {args.bootstrap} resamples)."
    )
    points = ", ".join(
        f"{point}%: {percent(_at(router_curve, point))}; {percent(_at(cascade_curve, point))}"
        for point in range(0, 101, 10)
    )
    lines = [
        (__doc__ or "").split("\n\nUsage")[0],
        "",
        f"Command: `python bench/zooter_tasks.py --bootstrap {args.bootstrap}`",
        f"Items: {len(items)} ({counts}).",
        random_line,
        areas,
        "Per task: " + "; ".join(per_task) + ".",
        f"Curves, accuracy % at each share sent to Gemma (router; cascade): {points}.",
        f"Router encoder: {encoder_seconds * 1000:.1f} ms per query (batches of 32).",
    ]
    notes = "\n".join(lines)
    path = record("zooter_tasks", table, notes)
    print(path.read_text())


def _at(curve: np.ndarray, share_percent: int) -> float:
    return float(curve[round(share_percent / 100 * (len(curve) - 1))])


def _chosen(correct: np.ndarray, seconds: np.ndarray, chosen: np.ndarray) -> tuple:
    rows_index = np.arange(len(chosen))
    return correct[rows_index, chosen], seconds[rows_index, chosen], float(chosen.mean())


if __name__ == "__main__":
    main()
