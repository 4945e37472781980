"""A confidence cascade on PIQA: SmolLM2-135M-Instruct answers, Gemma-3-270m when SmolLM2 is unsure.

Both choice stages (lm-eval's PIQA format as in pipelines/unite_piqa.yaml: "Question: {q}\\nAnswer:", each
option continued as " {option}", normalize: none, float32, no chat template) run on every item, each stage
alone, in batches of --chunk items; each item is charged its batch's measured wall time divided by the
batch's size (the cost of an item when the stage serves a stream of them). Per item the bench keeps
SmolLM2's probability of its pick, each stage's correctness and seconds.

From those it computes, with no threshold fitted to the items reported on:
- the cascade's accuracy against measured cost (mean seconds per item: SmolLM2 always, Gemma on the items
  escalated) for every threshold that splits the items differently (escalating the k least sure, k = 0..n);
- random escalation of the same share (expected value: accuracy and cost interpolate linearly between the
  two stages alone);
- APGR as RouteLLM defines it (Ong et al. 2024): PGR = (acc − acc_weak) / (acc_strong − acc_weak), averaged
  over strong-model call shares 10%, 20%, …, 100% (at each share the cascade escalates its least sure items;
  random escalation scores 0.55 on this grid);
- the area between the cascade's accuracy-cost curve and random's, divided by the cost range (mean accuracy
  gained over the range), with a 95% bootstrap interval (items resampled, the curve recomputed);
- the cascade at threshold 0.9, the value the issue named from an lm-eval measurement outside fslm (not fitted
  here), and a 2-fold cross-fit: `fslm finetune cascade`'s own search (thresholds.for_quality, within 1 point
  of Gemma) on one half of the items, applied to the other half, and the other way round, pooled: every item
  is scored with a threshold fitted without it.
With --verify N, the first N items also run through a real `cascade:` stage at threshold 0.9, and its answers
and the stages it ran must match the simulation.

Usage: nice -n 10 python bench/cascade_piqa.py [--limit 300] [--chunk 30] [--verify 30] [--bootstrap 2000]
"""

import argparse
import os
import random
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from common import SHARED_DATA, read_jsonl, record

from fslm.eval.stats import interval95, paired
from fslm.finetune.cascade.thresholds import ASSURANCE, StepResult, for_quality, operating_point, sweep
from fslm.nodes.cascade.confidence import choice_confidence
from fslm.pipeline import load_pipeline

MODELS = """models:
  smol: {source: smollm2-135m-instruct, dtype: float32}
  gemma: {source: gemma3-270m, dtype: float32}
inputs: [question, choices]
stages:
"""
STAGE = """  NAME:
    model: HANDLE
    prompt: "Question: {{ question }}\\nAnswer:"
    choices: "{{ choices }}"
    continuation: " {{ choice }}"
    normalize: none
"""
SMALL = STAGE.replace("NAME", "small").replace("HANDLE", "smol")
BIG = STAGE.replace("NAME", "big").replace("HANDLE", "gemma")
CASCADE = MODELS + "  answer:\n    cascade: {stages: [small, big], thresholds: [THRESHOLD]}\n" + SMALL + BIG
NAMED_THRESHOLD = 0.9
CALL_SHARES = [step / 10 for step in range(1, 11)]


def piqa_items(limit: int) -> list[dict]:
    rows = read_jsonl(SHARED_DATA / "piqa" / "dev.jsonl")
    return [
        {"question": row["question"], "choices": [row["A"], row["B"]], "gold": "AB".index(row["answer"])}
        for row in rows[:limit]
    ]


def run(text: str, items: list[dict], chunk: int) -> tuple[list[list[dict]], list[float]]:
    """Each item's stage messages, and its measured seconds: the items go through in batches of `chunk`, and
    each item is charged its batch's wall time divided by the batch's size."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text)
        pipeline = load_pipeline(path, store=":memory:", max_batch_size=chunk)
        try:
            pipeline.batch([inputs(item) for item in items[:2]])  # load the model and warm up
            messages: list[list[dict]] = []
            seconds: list[float] = []
            for start in range(0, len(items), chunk):
                batch = [inputs(item) for item in items[start : start + chunk]]
                started = time.perf_counter()
                messages += [result.messages for result in pipeline.batch(batch)]
                seconds += [(time.perf_counter() - started) / len(batch)] * len(batch)
            return messages, seconds
        finally:
            pipeline.close()


def inputs(item: dict) -> dict:
    return {"question": item["question"], "choices": item["choices"]}


def stage_results(items: list[dict], chunk: int, stage: str) -> list[StepResult]:
    messages, seconds = run(MODELS + (SMALL if stage == "small" else BIG), items, chunk)
    results = []
    for item, ran, cost in zip(items, messages, seconds, strict=True):
        picked = ran[-1]["choices"]
        results.append(
            StepResult(choice_confidence("probability", picked), picked["chosen"] == item["gold"], cost)
        )
    return results


def curve(results: list[list[StepResult]]) -> list[tuple[float, float, float]]:
    """(share escalated, mean seconds, accuracy) escalating the k least sure items, k = 0..n."""
    order = sorted(range(len(results)), key=lambda index: results[index][0].confidence)
    count = len(results)
    seconds = sum(item[0].seconds for item in results)
    correct = sum(item[0].correct for item in results)
    points = [(0.0, seconds / count, correct / count)]
    for k, index in enumerate(order, start=1):
        small, big = results[index]
        seconds += big.seconds
        correct += big.correct - small.correct
        points.append((k / count, seconds / count, correct / count))
    return points


def area_over_random(results: list[list[StepResult]]) -> float:
    """The area between the cascade's accuracy-cost curve and random escalation's, divided by the cost range:
    the accuracy gained over random, averaged over the costs between the two stages alone."""
    points = curve(results)
    (_, low, weak), (_, high, strong) = points[0], points[-1]
    cascade = sum((right[1] - left[1]) * (left[2] + right[2]) / 2 for left, right in pairwise(points))
    return (cascade - (high - low) * (weak + strong) / 2) / (high - low)


def apgr(results: list[list[StepResult]]) -> str:
    """RouteLLM's APGR, or why it is undefined."""
    points = curve(results)
    weak, strong = points[0][2], points[-1][2]
    if strong == weak:
        return "undefined (the two stages score the same)"
    recovered = [(points[round(share * len(results))][2] - weak) / (strong - weak) for share in CALL_SHARES]
    return f"{sum(recovered) / len(recovered):.3f}"


def bootstrap(results: list[list[StepResult]], rounds: int, seed: int = 0) -> tuple[float, float]:
    draw = random.Random(seed)
    areas = sorted(
        area_over_random([results[draw.randrange(len(results))] for _ in results]) for _ in range(rounds)
    )
    return areas[int(0.025 * rounds)], areas[int(0.975 * rounds) - 1]


def cross_fit(
    results: list[list[StepResult]], tolerance: float, assurance: float = ASSURANCE
) -> tuple[list[float], list[int], list[float]]:
    """Each half's threshold fitted on the other half by `fslm finetune cascade`'s search; per item (in
    order) its correctness and whether it was escalated, and the two thresholds (second half's first).
    Confidences below 0 are log-probabilities, searched as `fslm finetune cascade` searches a token
    measure."""
    logprob = min(item[0].confidence for item in results) < 0
    half = len(results) // 2
    correct, escalated, thresholds = [0.0] * len(results), [0] * len(results), []
    for fit, apply in ((range(half), range(half, len(results))), (range(half, len(results)), range(half))):
        fitted = [results[index] for index in fit]
        threshold = for_quality(fitted, sweep(fitted, logprob), tolerance, assurance).thresholds[0]
        thresholds.append(threshold)
        for index in apply:
            small, big = results[index]
            escalated[index] = int(small.confidence < threshold)
            correct[index] = float(big.correct if escalated[index] else small.correct)
    return correct, escalated, thresholds


def verify(items: list[dict], results: list[list[StepResult]], count: int) -> str:
    """Run a real cascade stage at the named threshold and compare it with the simulation."""
    messages, _ = run(CASCADE.replace("THRESHOLD", str(NAMED_THRESHOLD)), items[:count], count)
    for item, ran, simulated in zip(items, messages, results, strict=False):
        escalate = simulated[0].confidence < NAMED_THRESHOLD
        stages = [message["stage"] for message in ran]
        assert stages == (["small", "big", "answer"] if escalate else ["small", "answer"]), stages
        answered = next(message for message in ran if message["stage"] == ("big" if escalate else "small"))
        assert ran[-1]["text"] == answered["text"] == item["choices"][answered["choices"]["chosen"]]
    return (
        f"a real cascade stage at {NAMED_THRESHOLD} on the first {count} items ran and answered as simulated"
    )


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def with_interval(scores: list[float]) -> str:
    bounds = interval95(scores)
    return f"{percent(sum(scores) / len(scores))} [{percent(bounds.low)}, {percent(bounds.high)}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=300, help="the first N PIQA dev items (300: all)")
    parser.add_argument("--chunk", type=int, default=30, help="items per batch; each is charged its share")
    parser.add_argument("--verify", type=int, default=30, help="items to run through a real cascade stage")
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap rounds for the area's interval"
    )
    args = parser.parse_args()
    items = piqa_items(args.limit)
    started = time.perf_counter()
    results = [
        list(steps)
        for steps in zip(
            *(stage_results(items, args.chunk, stage) for stage in ("small", "big")), strict=True
        )
    ]
    measured = time.perf_counter() - started
    verified = verify(items, results, args.verify) if args.verify else "not verified against a real stage"
    small = [float(item[0].correct) for item in results]
    big = [float(item[1].correct) for item in results]
    small_seconds = sum(item[0].seconds for item in results) / len(results)
    big_seconds = sum(item[1].seconds for item in results) / len(results)
    points = curve(results)
    rows = []

    def add(what: str, correct: list[float], escalated: float, seconds: float, note: str = "") -> None:
        comparison = paired(correct, big)
        rows.append(
            {
                "what": what,
                "n": len(correct),
                "acc % [95% Wilson]": with_interval(correct),
                "escalated %": percent(escalated),
                "s/item (measured)": f"{seconds:.4f}",
                "cost vs Gemma alone": f"{seconds / big_seconds:.2f}",
                "vs Gemma: wins/losses (p)": (
                    f"{comparison.wins}/{comparison.losses} (p={comparison.p_value:.3f})"
                ),
                "note": note,
            }
        )

    add("SmolLM2 alone", small, 0.0, small_seconds)
    add("Gemma alone", big, 1.0, big_seconds)
    named = operating_point(results, [NAMED_THRESHOLD])
    named_correct = [
        float(item[1].correct if item[0].confidence < NAMED_THRESHOLD else item[0].correct)
        for item in results
    ]
    add(
        f"cascade, threshold {NAMED_THRESHOLD}",
        named_correct,
        named.escalated,
        named.seconds,
        "threshold named by the issue (lm-eval, outside fslm); not fitted on these items",
    )
    random_accuracy = (1 - named.escalated) * sum(small) / len(small) + named.escalated * sum(big) / len(big)
    rows.append(
        {
            "what": f"random escalation of the same share ({percent(named.escalated)}%), expected",
            "n": len(results),
            "acc % [95% Wilson]": percent(random_accuracy),
            "escalated %": percent(named.escalated),
            "s/item (measured)": f"{small_seconds + named.escalated * big_seconds:.4f}",
            "cost vs Gemma alone": f"{(small_seconds + named.escalated * big_seconds) / big_seconds:.2f}",
            "vs Gemma: wins/losses (p)": "",
            "note": "expected value",
        }
    )
    correct, escalated, fitted = cross_fit(results, 0.01)
    seconds = sum(
        item[0].seconds + flag * item[1].seconds for item, flag in zip(results, escalated, strict=True)
    ) / len(results)
    add(
        "cascade, 2-fold cross-fit (within 1 point of Gemma)",
        correct,
        sum(escalated) / len(escalated),
        seconds,
        f"thresholds fitted on the other half: {fitted[1]:.4f} (items 1-{len(results) // 2}), "
        f"{fitted[0]:.4f} (the rest)",
    )
    low, high = bootstrap(results, args.bootstrap)
    area = area_over_random(results)
    along = "; ".join(
        f"{percent(share)}% escalated: acc {percent(accuracy)}, {cost:.4f} s/item"
        for share, cost, accuracy in points[:: max(1, len(points) // 10)]
    )
    load_now = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    source = (
        f"PIQA dev, the first {len(items)} items (`/work/shared/data/piqa/dev.jsonl`; 300 is all of it); "
        f"each stage alone on every item in batches of {args.chunk} (float32, CPU). An item's seconds are "
        "its batch's measured wall time divided by the batch's size, on this machine, so the cost axis "
        "moves with its load."
    )
    apgr_line = (
        f"- APGR (RouteLLM: PGR averaged at 10%, 20%, …, 100% of items sent to Gemma): "
        f"**{apgr(results)}** (random escalation: 0.550 on this grid)."
    )
    area_line = (
        f"- Area between the cascade's accuracy-cost curve and random escalation's, divided by the cost "
        f"range ({points[0][1]:.4f} to {points[-1][1]:.4f} s/item): **{100 * area:+.2f} points** of "
        f"accuracy, 95% bootstrap interval [{100 * low:+.2f}, {100 * high:+.2f}] ({args.bootstrap} "
        "rounds, items resampled)."
    )
    load_line = f"- Load average (1, 5, 15 min) at the start: {LOAD_AT_START}; at the end: {load_now}."
    curve_line = f"- The curve, escalating the least sure items first: {along}."
    notes = "\n".join(
        [
            source,
            f"Measured in {measured:.0f} s; {verified}.",
            "",
            apgr_line,
            area_line,
            curve_line,
            load_line,
        ]
    )
    print(record("cascade_piqa", rows, notes).read_text())


LOAD_AT_START = ", ".join(f"{value:.2f}" for value in os.getloadavg())

if __name__ == "__main__":
    main()
