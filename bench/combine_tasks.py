"""Combining two tuned stages of one task on different bases: SmolLM2-135M-Instruct and Gemma-3-270m, each
with a LoRA adapter trained on the same gold rows by the same recipe. Each alone, a confidence cascade
(either way round) and a UniTE choice stage over both, on the task's dev split; and, on each base, a
generating stage trained on the same rows to write the label's text (then end-of-sequence), cascaded by its
mean token log-probability.

The task's stage is the shipped one (`pipelines/tasks/TASK.yaml`: its prompt, options and verbalizer), on
each base without its adapter. Both adapters train on the first --train rows of a seeded shuffle of the
task's train split, rank 16, one epoch, learning rate 5e-4, batch 8 (the strong stage's recipe of the
weak-to-strong bench), written to finetune/adapters/combine/TASK/ and reused when present. `--adapters
SMOL,GEMMA` uses two existing choice-stage adapters instead (SST-2: the weak-to-strong run's Gemma ceiling
and `finetune/w2s_sst2/smol_gold.yaml`, both on that run's half B; the generating stages then train on the
first --train rows as usual). A choice stage's adapter learns the option's text with no end-of-sequence
after it (options are scored, not written), so it does not serve as a generating stage: Gemma's repeats the
label until the token cap.

Every stage runs alone on every item in batches of --chunk (float32, CPU); an item is charged its batch's
measured wall time over the batch's size. From the per-item results, with nothing fitted on the items
reported: each system's accuracy (Wilson 95%), paired wins and losses; for each cascade, its accuracy-cost
curve over every threshold against random escalation of the same share, the area between them with a 95%
bootstrap interval, APGR, and a 2-fold cross-fit of `fslm finetune cascade`'s search (within 1 point of the
second stage).

Usage: python bench/combine_tasks.py --task sst2|agnews|trec|banking77|snips [--train 640]
       [--adapters SMOL,GEMMA] [--limit N] [--chunk 32] [--bootstrap 2000]
Writes bench/results/combine_TASK.md and the per-item results bench/results/combine_TASK_items.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import yaml
from cascade_piqa import apgr, area_over_random, bootstrap, cross_fit, curve, percent, with_interval
from common import BENCH, RESULTS, SHARED_DATA, machine, read_jsonl

from fslm.eval.metrics import score
from fslm.eval.stats import paired
from fslm.finetune.cascade.thresholds import StepResult
from fslm.nodes.cascade.confidence import step_confidence
from fslm.pipeline import load_pipeline

SOURCES = {"smol": "smollm2-135m-instruct", "gemma": "gemma3-270m"}
SHUFFLE_SEED = 0
LABEL_FIELDS = {"snips": "intent"}
LABEL_TOKENS = {"banking77": 16}  # the generating stage's token cap: Banking77's longest labels take 9
RECIPE = {
    "lora": {"r": 16, "alpha": 32},
    "train": {"epochs": 1, "batch_size": 8, "learning_rate": 0.0005, "max_length": 256},
    "eval": {"split": 0.0},
}


def task_rows(name: str, split: str) -> list[dict]:
    """The task's records, each with its gold label under `label` (SNIPS spells it `intent`)."""
    field = LABEL_FIELDS.get(name, "label")
    return [row | {"label": row[field]} for row in read_jsonl(SHARED_DATA / name / f"{split}.jsonl")]


class Task:
    """A shipped task stage, rebuilt on either base with a given adapter, as a choice or generating stage."""

    def __init__(self, name: str, adapters: dict[str, Path]) -> None:
        self.name = name
        self.adapters = adapters
        shipped = yaml.safe_load((BENCH.parent / "pipelines" / "tasks" / f"{name}.yaml").read_text())
        self.inputs = shipped["inputs"]
        self.stage = {key: value for key, value in shipped["stages"]["label"].items() if key != "adapter"}
        self.readable = dict(self.stage["choices"])  # label → the text the model scores and writes

    def pipeline(self, system: str, adapters: bool = True) -> dict:
        """`smol`, `gemma` (choice stages), `unite` (both), `smol_gen`, `gemma_gen` (writing the label), each
        with its own adapter (`adapters=False`: none, to train one)."""
        stage = dict(self.stage)
        model = system.removesuffix("_gen")
        if system == "unite":
            stage.pop("search", None)  # best-first search needs one model
            stage.pop("model", None)
            members = [{"model": model, "adapter": str(self.adapters[model])} for model in SOURCES]
            stage["ensemble"] = {"members": members}
        else:
            stage["model"] = model
            if adapters:
                stage["adapter"] = str(self.adapters[system])
        if system.endswith("_gen"):
            for key in ("choices", "normalize", "search", "continuation"):
                stage.pop(key, None)
            stage |= {
                "chat_template": False,
                "generation": {"max_new_tokens": LABEL_TOKENS.get(self.name, 8), "stop": ["\n"]},
            }
        models = {m: {"source": source, "dtype": "float32"} for m, source in SOURCES.items()}
        return {"models": models, "inputs": self.inputs, "stages": {"label": stage}}

    def train(self, rows: int) -> dict[str, float]:
        """Train whichever adapter is missing on the first `rows` of the seeded shuffle; seconds each."""
        from fslm.cli.main import main as fslm

        train = task_rows(self.name, "train")
        random.Random(SHUFFLE_SEED).shuffle(train)
        seconds = {}
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder) / "train.jsonl"  # `text_label`: the readable label a generating stage writes
            data.write_text(
                "".join(
                    json.dumps(row | {"text_label": self.readable[row["label"]]}) + "\n"
                    for row in train[:rows]
                )
            )
            for system, adapter in self.adapters.items():
                if (adapter / "adapter_config.json").is_file():
                    continue
                pipeline = Path(folder) / f"{system}.yaml"
                pipeline.write_text(yaml.safe_dump(self.pipeline(system, adapters=False)))
                recipe = Path(folder) / f"{system}_recipe.yaml"
                target = {"pipeline": str(pipeline), "stage": "label"}
                field = "text_label" if system.endswith("_gen") else "label"
                dataset = {"dataset": {"path": str(data), "target": field}}
                recipe.write_text(
                    yaml.safe_dump({"target": target, "data": dataset, **RECIPE, "output": str(adapter)})
                )
                started = time.perf_counter()
                if fslm(["finetune", str(recipe)]):
                    raise SystemExit(f"training the {system} adapter failed")
                seconds[system] = time.perf_counter() - started
        return seconds


def run_stage(task: Task, stage: str, items: list[dict], chunk: int) -> list[dict]:
    """Per item: the stage's answer, its confidence (a choice stage's probability of its pick, a generating
    stage's mean token log-probability), right or wrong (a pick: the gold label; text: an exact match of the
    gold label's readable text), measured seconds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stage.yaml"
        path.write_text(yaml.safe_dump(task.pipeline(stage)))
        pipeline = load_pipeline(path, store=":memory:", max_batch_size=chunk)
        try:
            pipeline.batch([inputs(task, item) for item in items[:2]])  # load and warm up
            found = []
            for start in range(0, len(items), chunk):
                batch = items[start : start + chunk]
                started = time.perf_counter()
                results = pipeline.batch([inputs(task, item) for item in batch])
                seconds = (time.perf_counter() - started) / len(batch)
                for item, result in zip(batch, results, strict=True):
                    message = result.messages[-1]
                    generated = stage.endswith("_gen")
                    measure = "mean_logprob" if generated else "probability"
                    gold = task.readable[item["label"]] if generated else item["label"]
                    found.append(
                        {
                            "pick": result.output,
                            "confidence": step_confidence(measure, message),
                            "correct": score("exact", result.output, gold) == 1.0,
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


def inputs(task: Task, item: dict) -> dict:
    return {name: item[name] for name in task.inputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=["sst2", "agnews", "trec", "banking77", "snips"])
    parser.add_argument("--train", type=int, default=640, help="gold training rows for each adapter (640)")
    parser.add_argument("--adapters", help="SMOL,GEMMA: existing adapters instead of training them")
    parser.add_argument("--limit", type=int, help="only the first N dev items (default: all)")
    parser.add_argument("--chunk", type=int, default=32, help="items per batch; each is charged its share")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap rounds for the areas")
    args = parser.parse_args()
    home = BENCH.parent / "finetune" / "adapters" / "combine" / args.task
    adapters = {system: home / system for system in ("smol", "gemma", "smol_gen", "gemma_gen")}
    if args.adapters:
        given = [Path(path).resolve() for path in args.adapters.split(",")]
        missing = [str(path) for path in given if not (path / "adapter_config.json").is_file()]
        if len(given) != 2 or missing:
            raise SystemExit(f"--adapters needs two adapter directories, SMOL,GEMMA (missing: {missing})")
        adapters |= dict(zip(SOURCES, given, strict=True))
    task = Task(args.task, adapters)
    load_before = os.getloadavg()
    trained = task.train(args.train)
    items = task_rows(args.task, "dev")[: args.limit]
    stages = ("smol", "gemma", "unite", "smol_gen", "gemma_gen")
    found = {stage: run_stage(task, stage, items, args.chunk) for stage in stages}
    (RESULTS / f"combine_{args.task}_items.jsonl").write_text(
        "".join(
            json.dumps(inputs(task, item) | {"label": item["label"]} | {s: found[s][i] for s in found}) + "\n"
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
    command = f"python bench/combine_tasks.py --task {args.task} --train {args.train}" + (
        f" --adapters {args.adapters}" if args.adapters else ""
    )
    command += (
        f"{f' --limit {args.limit}' if args.limit else ''} --chunk {args.chunk} --bootstrap {args.bootstrap}"
    )
    training = ", ".join(f"{model} {seconds:.0f} s" for model, seconds in trained.items()) or "none (existed)"
    text = f"""# combine_{args.task}: two tuned stages (SmolLM2, Gemma-3-270m) alone, cascaded and UniTE-d

Machine: {machine()}. Load average (1, 5, 15 min) {", ".join(f"{x:.2f}" for x in load_before)} at the start,
{", ".join(f"{x:.2f}" for x in os.getloadavg())} at the end. Command: `{command}`. Adapters:
{", ".join(f"{model} {path}" for model, path in adapters.items())}; trained in this run: {training}. Items:
the first {len(items)} {args.task} dev items.

{chr(10).join(table)}

Paired on the same items (exact McNemar):
{chr(10).join(comparisons)}

Cascades (confidence: the first stage's probability of its pick, or for the generating stages its mean
token log-probability; cost: measured seconds per item of the stages that ran):
{chr(10).join(notes)}
"""
    (RESULTS / f"combine_{args.task}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
