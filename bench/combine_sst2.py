"""Combining two tuned SST-2 stages on different bases: SmolLM2-135M-Instruct and Gemma-3-270m, each with a
LoRA adapter trained on the same gold rows by the same recipe. Each alone, a confidence cascade (either way
round) and a UniTE choice stage over both, on the SST-2 dev split; and the same adapters as generating stages
(writing the label), cascaded by their mean token log-probability.

The pair:
- Gemma: the gold ceiling of `python bench/boost_w2s.py --task sst2` (`strong_on_gold`: half B's gold labels,
  r = 16, 1 epoch, learning rate 5e-4);
- SmolLM2: `finetune/w2s_sst2/smol_gold.yaml`, the same rows and settings, trained here unless its output
  exists (this script writes its data file, half B of the weak-to-strong run's data).

Every stage runs alone on every item in batches of --chunk (float32, CPU); an item is charged its batch's
measured wall time over the batch's size. From the per-item results, with nothing fitted on the items
reported: each stage's and UniTE's accuracy (Wilson 95%), paired wins and losses; for a cascade of the two
(each order), its accuracy-cost curve over every threshold against random escalation of the same share, the
area between them with a 95% bootstrap interval, APGR, and a 2-fold cross-fit of `fslm finetune cascade`'s
search (within 1 point of the dearer stage); UniTE's cost against each member.

Usage: nice python bench/combine_sst2.py [--limit 872] [--chunk 32] [--bootstrap 2000]
Writes bench/results/combine_sst2.md and the per-item results bench/results/combine_sst2_items.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from cascade_piqa import apgr, area_over_random, bootstrap, cross_fit, curve, percent, with_interval
from common import BENCH, RESULTS, SHARED_DATA, machine, read_jsonl

from fslm.eval.metrics import score
from fslm.eval.stats import paired
from fslm.finetune.cascade.thresholds import StepResult
from fslm.nodes.cascade.confidence import step_confidence
from fslm.pipeline import load_pipeline

RECIPES = BENCH.parent / "finetune" / "w2s_sst2"
SMOL_RECIPE = RECIPES / "smol_gold.yaml"
GEMMA_ADAPTER = BENCH.parent / "finetune" / "adapters" / "w2s_sst2" / "strong_on_gold"
SMOL_ADAPTER = BENCH.parent / "finetune" / "adapters" / "sst2_smol_on_half_b"
PROMPT = '"Review: {{ text }}\\nSentiment:"'
LABELS = ["positive", "negative"]


def pipeline_text(stage: str) -> str:
    """A pipeline of one stage: `smol`, `gemma` (choice stages, each with its adapter), `unite` (a UniTE
    choice stage over both), or `smol_gen`, `gemma_gen` (the same adapters writing the label as text)."""
    adapters = {"smol": SMOL_ADAPTER, "gemma": GEMMA_ADAPTER}
    head = (
        "models:\n  smol: {source: smollm2-135m-instruct, dtype: float32}\n"
        "  gemma: {source: gemma3-270m, dtype: float32}\ninputs: [text]\nstages:\n  label:\n"
    )
    if stage.endswith("_gen"):
        model = stage.removesuffix("_gen")
        return head + (
            f"    model: {model}\n    adapter: {adapters[model]}\n    chat_template: false\n"
            f'    prompt: {PROMPT}\n    generation: {{max_new_tokens: 4, stop: ["\\n"]}}\n'
        )
    if stage == "unite":
        members = ", ".join(f"{{model: {name}, adapter: {path}}}" for name, path in adapters.items())
        body = f"    ensemble: {{members: [{members}]}}\n"
    else:
        body = f"    model: {stage}\n    adapter: {adapters[stage]}\n"
    return head + body + f"    prompt: {PROMPT}\n    choices: [positive, negative]\n    normalize: none\n"


def train_smol() -> float | None:
    """Train SmolLM2's adapter on half B unless it exists; its wall seconds, or None when it existed."""
    if (SMOL_ADAPTER / "adapter_config.json").is_file():
        return None
    from fslm.cli.main import main as fslm

    rows = read_jsonl(RECIPES / "data" / "train.jsonl")
    half_b = [row for row in rows if row["half"] == "B"]
    (RECIPES / "data" / "half_b.jsonl").write_text("".join(json.dumps(row) + "\n" for row in half_b))
    started = time.perf_counter()
    if fslm(["finetune", str(SMOL_RECIPE)]):
        raise SystemExit("training SmolLM2's adapter failed")
    return time.perf_counter() - started


def run_stage(stage: str, items: list[dict], chunk: int) -> list[dict]:
    """Per item: the stage's answer, its confidence (a choice stage's probability of its pick, a generating
    stage's mean token log-probability), right or wrong (exact match), measured seconds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stage.yaml"
        path.write_text(pipeline_text(stage))
        pipeline = load_pipeline(path, store=":memory:", max_batch_size=chunk)
        try:
            pipeline.batch([{"text": item["text"]} for item in items[:2]])  # load and warm up
            found = []
            for start in range(0, len(items), chunk):
                batch = items[start : start + chunk]
                started = time.perf_counter()
                results = pipeline.batch([{"text": item["text"]} for item in batch])
                seconds = (time.perf_counter() - started) / len(batch)
                for item, result in zip(batch, results, strict=True):
                    message = result.messages[-1]
                    measure = "mean_logprob" if stage.endswith("_gen") else "probability"
                    found.append(
                        {
                            "pick": result.output,
                            "confidence": step_confidence(measure, message),
                            "correct": score("exact", result.output, item["label"]) == 1.0,
                            "seconds": seconds,
                        }
                    )
            return found
        finally:
            pipeline.close()


def cascade_rows(name: str, results: list[list[StepResult]], rounds: int) -> tuple[dict, str, list[float]]:
    """The cascade's cross-fit row, a note on its curve, and the cross-fit's per-item correctness."""
    low, high = bootstrap(results, rounds)
    correct, escalated, fitted = cross_fit(results, 0.01)
    seconds = sum(
        item[0].seconds + flag * item[1].seconds for item, flag in zip(results, escalated, strict=True)
    ) / len(results)
    row = {
        "system": f"cascade {name}, 2-fold cross-fit (within 1 point of the second)",
        "acc % [95% Wilson]": with_interval(correct),
        "escalated %": percent(sum(escalated) / len(escalated)),
        "s/item": f"{seconds:.4f}",
    }
    points = curve(results)
    along = "; ".join(
        f"{percent(share)}%: acc {percent(accuracy)}, {cost:.4f} s"
        for share, cost, accuracy in points[:: max(1, len(points) // 8)]
    )
    note = (
        f"- cascade {name}: area over random escalation {100 * area_over_random(results):+.2f} points, 95% "
        f"bootstrap [{100 * low:+.2f}, {100 * high:+.2f}]; APGR {apgr(results)}; cross-fit thresholds "
        f"{fitted[1]:.4f} / {fitted[0]:.4f}; curve (share escalated: acc, s/item): {along}"
    )
    return row, note, correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=872, help="the first N SST-2 dev items (872: all)")
    parser.add_argument("--chunk", type=int, default=32, help="items per batch; each is charged its share")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap rounds for the areas")
    args = parser.parse_args()
    if not (GEMMA_ADAPTER / "adapter_config.json").is_file():
        raise SystemExit(f"{GEMMA_ADAPTER} is missing: run python bench/boost_w2s.py --task sst2 first")
    load_before = os.getloadavg()
    trained = train_smol()
    items = read_jsonl(SHARED_DATA / "sst2" / "dev.jsonl")[: args.limit]
    stages = ("smol", "gemma", "unite", "smol_gen", "gemma_gen")
    found = {stage: run_stage(stage, items, args.chunk) for stage in stages}
    (RESULTS / "combine_sst2_items.jsonl").write_text(
        "".join(
            json.dumps({"text": item["text"], "label": item["label"]} | {s: found[s][i] for s in found})
            + "\n"
            for i, item in enumerate(items)
        )
    )
    correct = {stage: [float(row["correct"]) for row in rows] for stage, rows in found.items()}
    seconds = {stage: sum(row["seconds"] for row in rows) / len(rows) for stage, rows in found.items()}
    rows = [
        {
            "system": name,
            "acc % [95% Wilson]": with_interval(correct[stage]),
            "escalated %": "",
            "s/item": f"{seconds[stage]:.4f}",
        }
        for stage, name in (
            ("smol", "SmolLM2 tuned"),
            ("gemma", "Gemma tuned"),
            ("unite", "UniTE of both"),
            ("smol_gen", "SmolLM2 tuned, writing the label"),
            ("gemma_gen", "Gemma tuned, writing the label"),
        )
    ]

    def steps(first: str, second: str) -> list[list[StepResult]]:
        return [
            [
                StepResult(
                    found[stage][i]["confidence"], found[stage][i]["correct"], found[stage][i]["seconds"]
                )
                for stage in (first, second)
            ]
            for i in range(len(items))
        ]

    notes, cascades = [], {}
    for first, second in (("smol", "gemma"), ("gemma", "smol"), ("smol_gen", "gemma_gen")):
        name = f"{first} → {second}"
        row, note, cascades[name] = cascade_rows(name, steps(first, second), args.bootstrap)
        rows.append(row)
        notes.append(note)

    def versus(name: str, mine: list[float], theirs: str) -> str:
        found = paired(mine, correct[theirs])
        return f"- {name} vs {theirs}: {found.wins} wins / {found.losses} losses (p = {found.p_value:.3f})"

    comparisons = [
        versus(a, correct[a], b) for a, b in (("unite", "smol"), ("unite", "gemma"), ("gemma", "smol"))
    ]
    best = max(("smol", "gemma"), key=lambda stage: sum(correct[stage]))
    comparisons += [versus(f"cascade {name} (cross-fit)", scores, best) for name, scores in cascades.items()]
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    table += ["| " + " | ".join(str(value) for value in row.values()) + " |" for row in rows]
    text = f"""# combine_sst2: two tuned SST-2 stages (SmolLM2, Gemma-3-270m) alone, cascaded and UniTE-d

Machine: {machine()}. Load average (1, 5, 15 min) {", ".join(f"{x:.2f}" for x in load_before)} at the start,
{", ".join(f"{x:.2f}" for x in os.getloadavg())} at the end. Command: `python bench/combine_sst2.py --limit
{args.limit} --chunk {args.chunk} --bootstrap {args.bootstrap}`. SmolLM2's adapter: {
        f"trained in this run, {trained:.0f} s" if trained is not None else "existed"
    }. Items: the first {len(items)} SST-2 dev sentences.

{chr(10).join(table)}

Paired on the same items (exact McNemar):
{chr(10).join(comparisons)}

Cascades (confidence: the first stage's probability of its pick, or for the generating stages its mean
token log-probability; cost: measured seconds per item of the stages that ran):
{chr(10).join(notes)}
"""
    (RESULTS / "combine_sst2.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
