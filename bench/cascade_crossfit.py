"""Do the thresholds `fslm finetune cascade --target-quality` picks keep their promise on items they were not
fitted on? Two rules, from the per-item results that bench/combine_tasks.py recorded (a SmolLM2 stage
cascaded to a Gemma-3-270m stage, tuned on the same rows, as choice stages and as generating stages):

- assurance 0: the cheapest threshold within the tolerance of the last stage on the fitted items themselves
  (the rule until this bench);
- assurance A (default 0.9): the cheapest threshold within the tolerance on a share A of bootstrap
  resamples of the fitted items (thresholds.for_quality, the default now).

Each run splits a task's dev items at random into two halves, fits a threshold on one half and applies it to
the other, both ways round. Over --splits seeded splits it reports, per task and cascade, the mean accuracy
of the applied cascade less the last stage's on the same half, the share of applied halves that stay within
the tolerance, the mean share escalated and the mean measured seconds per item. Nothing runs a model: the
costs are the seconds combine_tasks measured.

Usage: python bench/cascade_crossfit.py [--tolerance 0.01] [--assurance 0.9] [--splits 50]
Writes bench/results/cascade_crossfit.md.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence

from common import RESULTS, read_jsonl, record

from fslm.finetune.cascade.thresholds import StepResult, for_quality, operating_point, sweep

TASKS = ("sst2", "agnews", "trec", "banking77", "snips")
CASCADES = {"choice": ("smol", "gemma"), "generating": ("smol_gen", "gemma_gen")}

Items = Sequence[Sequence[StepResult]]


def steps(task: str, cascade: str) -> list[list[StepResult]]:
    rows = read_jsonl(RESULTS / f"combine_{task}_items.jsonl")
    return [
        [StepResult(row[s]["confidence"], row[s]["correct"], row[s]["seconds"]) for s in CASCADES[cascade]]
        for row in rows
    ]


def applied(fitted: Items, other: Items, tolerance: float, assurance: float) -> tuple[float, float, float]:
    """The threshold fitted on `fitted`, applied to `other`: accuracy less the last stage's, share escalated,
    seconds per item."""
    logprob = min(item[0].confidence for item in fitted) < 0  # a token measure
    threshold = for_quality(fitted, sweep(fitted, logprob), tolerance, assurance).thresholds
    point = operating_point(other, threshold)
    last = sum(item[-1].correct for item in other) / len(other)
    return point.accuracy - last, point.escalated, point.seconds


def summary(items: Items, tolerance: float, assurance: float, splits: int) -> dict[str, str]:
    gaps, escalated, seconds = [], [], []
    for seed in range(splits):
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        half = len(order) // 2
        first, second = [items[i] for i in order[:half]], [items[i] for i in order[half:]]
        for fitted, other in ((first, second), (second, first)):
            gap, share, cost = applied(fitted, other, tolerance, assurance)
            gaps.append(gap)
            escalated.append(share)
            seconds.append(cost)
    count = len(gaps)
    return {
        "acc − last stage's, points": f"{100 * sum(gaps) / count:+.2f}",
        "halves within tolerance": f"{sum(gap >= -tolerance - 1e-9 for gap in gaps) / count:.2f}",
        "escalated %": f"{100 * sum(escalated) / count:.1f}",
        "s/item": f"{sum(seconds) / count:.4f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tolerance", type=float, default=0.01, help="accuracy the cascade may lose (0.01)")
    parser.add_argument("--assurance", type=float, default=0.9, help="the assured rule's share (0.9)")
    parser.add_argument("--splits", type=int, default=50, help="random half splits per task (50)")
    args = parser.parse_args()
    rows = []
    for task in TASKS:
        for cascade in CASCADES:
            items = steps(task, cascade)
            alone = [sum(item[step].correct for item in items) / len(items) for step in (0, 1)]
            for assurance in (0.0, args.assurance):
                rows.append(
                    {
                        "task": task,
                        "cascade": cascade,
                        "items": len(items),
                        "SmolLM2 / Gemma acc": f"{100 * alone[0]:.1f} / {100 * alone[1]:.1f}",
                        "assurance": f"{assurance:g}",
                    }
                    | summary(items, args.tolerance, assurance, args.splits)
                )
    notes = (
        f"Command: `python bench/cascade_crossfit.py --tolerance {args.tolerance} --assurance "
        f"{args.assurance} --splits {args.splits}`. Per-item results: bench/results/combine_TASK_items.jsonl "
        f"(each task's full dev split; SmolLM2 → Gemma, both tuned on the same 640 gold rows). Each of "
        f"{args.splits} random half splits fits a threshold on one half and applies it to the other, both "
        f"ways round ({2 * args.splits} applied halves per row). Target: within {100 * args.tolerance:g} "
        "point(s) of the last stage (Gemma) alone on the same half."
    )
    path = record("cascade_crossfit", rows, notes)
    print(path.read_text().split("```json")[0])


if __name__ == "__main__":
    main()
