"""The task suite (docs/tasks.md): each shipped task stage (pipelines/tasks/TASK.yaml) on its full dev split,
untuned zero-shot, untuned few-shot and tuned, with 95% intervals, paired wins and losses, and items/s.

Systems, all the task pipeline's one choice stage on the same dev items:
- zero: the stage without its adapter;
- few: the stage without its adapter, its prompt preceded by --shots examples of the train split (the first
  record of each label in train order, then the next records, until --shots; each followed by its label's
  readable text, as the stage scores it);
- tuned: the stage as shipped.

Each system's per-item results are cached in --cache (TASK-SYSTEM.jsonl: reference, output, correct,
probability of the pick, seconds), so the systems can run in separate processes; --report reads them all and
writes bench/results/task_suite.md with the adapters' training figures (adapters/tasks/TASK/training.json).

Usage: python bench/task_suite.py --task sst2 [--systems zero,few,tuned] [--limit N] [--shots 8]
       python bench/task_suite.py --task banking77 --systems tuned --adapter DIR   (a learning-curve point)
       python bench/task_suite.py --report
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, record

from fslm.eval.stats import interval95, paired
from fslm.jsonl import json_lines
from fslm.pipeline import Pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.spec import load_spec
from fslm.store import open_store

ROOT = Path(__file__).resolve().parent.parent
TASKS = {
    "sst2": "label",
    "agnews": "label",
    "trec": "label",
    "banking77": "label",
    "snips": "intent",
    "clinc150": "label",
}
SYSTEMS = ["zero", "few", "tuned"]
STAGE = "label"


def read_jsonl(path: Path) -> list[dict]:
    return [value for _, value in json_lines(path)]


def task_spec(task: str, system: str, shots: int, adapter: Path | None = None):
    spec = load_spec(ROOT / "pipelines" / "tasks" / f"{task}.yaml")
    stage = spec.stages[STAGE]
    if system == "tuned":
        if adapter is not None:
            stage = stage.model_copy(update={"adapter": adapter.resolve()})
            return spec.model_copy(update={"stages": {**spec.stages, STAGE: stage}})
        if stage.adapter is None:
            raise SystemExit(
                f"pipelines/tasks/{task}.yaml has no adapter yet: train finetune/tasks/{task}.yaml"
            )
        return spec
    update: dict = {"adapter": None}
    if system == "few":
        update["prompt"] = few_shot_prefix(task, stage, shots) + stage.prompt
    return spec.model_copy(update={"stages": {**spec.stages, STAGE: stage.model_copy(update=update)}})


def few_shot_prefix(task: str, stage, shots: int) -> str:
    """`shots` train examples rendered with the stage's prompt, each followed by its label's text."""
    from fslm.spec.templates import compile_template, render_template

    records = read_jsonl(SHARED_DATA / task / "train.jsonl")
    answer = TASKS[task]
    picked, seen = [], set()
    for rec in records:
        if rec[answer] not in seen:
            seen.add(rec[answer])
            picked.append(rec)
        if len(picked) == shots:
            break
    for rec in records:
        if len(picked) >= shots:
            break
        if rec not in picked:
            picked.append(rec)
    template = compile_template(stage.prompt, "few-shot prompt")
    blocks = [
        f"{render_template(template, rec, 'few-shot prompt')} {stage.choices[rec[answer]]}" for rec in picked
    ]
    return "\n\n".join(blocks) + "\n\n"


def run_system(task: str, system: str, args: argparse.Namespace) -> Path:
    answer = TASKS[task]
    items = read_jsonl(SHARED_DATA / task / "dev.jsonl")[: args.limit]
    spec = task_spec(task, system, args.shots, args.adapter)
    refs = {name: ModelRef(source=model.source, dtype=model.dtype) for name, model in spec.models.items()}
    inputs = [{key: value for key, value in item.items() if key == spec.inputs[0]} for item in items]
    with tempfile.TemporaryDirectory() as folder, Runtime(refs, max_batch_size=args.batch) as runtime:
        pipeline = Pipeline(spec, runtime, open_store(Path(folder) / "runs.sqlite"))
        pipeline.batch(inputs[:2])  # warm-up: model load and first-call costs are not the stage's speed
        started = time.perf_counter()
        results = pipeline.batch(inputs)
        seconds = time.perf_counter() - started
    rows = []
    for item, result in zip(items, results, strict=True):
        choices = result.messages[-1]["choices"]
        rows.append(
            {
                "reference": item[answer],
                "output": result.output,
                "correct": float(result.output == item[answer]),
                "probability": choices["probabilities"][choices["chosen"]],
            }
        )
    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"{task}-{system}.jsonl"
    header = {"task": task, "system": system, "items": len(items), "seconds": seconds, "shots": args.shots}
    if system == "tuned" and args.adapter is not None:
        # Another adapter of the task: a point of its learning curve, beside the shipped adapter's result.
        header["training"] = training_figures(args.adapter)
        path = path.with_name(f"{path.stem}-{curve_point(header['training'])}.jsonl")
    elif system == "tuned":
        header["training"] = training_figures(ROOT / "adapters" / "tasks" / task)
        keep_earlier_adapters_result(path, header["training"])
    path.write_text("\n".join(json.dumps(row) for row in [header, *rows]) + "\n")
    accuracy = sum(row["correct"] for row in rows) / len(rows)
    print(f"{task} {system}: acc {accuracy:.3f} on {len(rows)} items, {len(rows) / seconds:.2f} items/s")
    return path


def training_figures(adapter: Path) -> dict | None:
    path = adapter / "training.json"
    if not path.exists():
        return None
    trained = json.loads(path.read_text())
    return {
        "examples": trained["examples"]["train"],
        "epochs": trained["recipe"]["train"]["epochs"],
        "train_seconds": trained["train_seconds"],
        "tokens_per_second": trained["tokens_per_second"],
    }


def keep_earlier_adapters_result(path: Path, training: dict | None) -> None:
    """A tuned result of an adapter trained on another number of examples or epochs moves to
    TASK-tuned-N[xE].jsonl: a point of the task's learning curve."""
    if not path.exists() or training is None:
        return
    header = read_jsonl(path)[0]
    earlier = header.get("training")
    if earlier and curve_point(earlier) != curve_point(training):
        path.rename(path.with_name(f"{path.stem}-{curve_point(earlier)}.jsonl"))


def curve_point(training: dict) -> str:
    """N examples, or NxE for E epochs over them."""
    epochs = training.get("epochs", 1.0)
    return str(training["examples"]) + ("" if epochs == 1 else f"x{epochs:g}")


def learning_curve_rows(cache: Path) -> list[dict]:
    """Every tuned result of each task (the shipped adapter's and earlier ones), by training examples."""
    rows = []
    for task in TASKS:
        for path in sorted(cache.glob(f"{task}-tuned*.jsonl")):
            header, *results = read_jsonl(path)
            training = header.get("training")
            if training is None:
                continue
            scores = [row["correct"] for row in results]
            interval = interval95(scores)
            rows.append(
                {
                    "task": task,
                    "train examples": training["examples"],
                    "epochs": f"{training.get('epochs', 1.0):g}",
                    "shipped": "yes" if path.stem == f"{task}-tuned" else "",
                    "dev acc": f"{sum(scores) / len(scores):.3f}",
                    "95% interval": f"[{interval.low:.3f}, {interval.high:.3f}]",
                    "train min": f"{training['train_seconds'] / 60:.1f}",
                }
            )
    return sorted(
        rows, key=lambda row: (list(TASKS).index(row["task"]), row["train examples"], float(row["epochs"]))
    )


def load_cached(cache: Path, task: str, system: str) -> tuple[dict, list[dict]] | None:
    path = cache / f"{task}-{system}.jsonl"
    if not path.exists():
        return None
    header, *rows = read_jsonl(path)
    return header, rows


def report(args: argparse.Namespace) -> None:
    rows = []
    for task in TASKS:
        tuned = load_cached(args.cache, task, "tuned")
        for system in SYSTEMS:
            found = load_cached(args.cache, task, system)
            if found is None:
                continue
            header, results = found
            scores = [row["correct"] for row in results]
            interval = interval95(scores)
            row = {
                "task": task,
                "system": system + (f" ({header['shots']}-shot)" if system == "few" else ""),
                "n": len(scores),
                "acc": f"{sum(scores) / len(scores):.3f}",
                "95% interval": f"[{interval.low:.3f}, {interval.high:.3f}]",
                "tuned vs this (W/L, p)": "",
                "items/s": f"{len(scores) / header['seconds']:.2f}",
                "train examples": "",
                "train min": "",
                "train tok/s": "",
            }
            if tuned is not None and system != "tuned" and len(tuned[1]) >= len(results):
                # Both ran on the split's first items: pair the tuned stage's first len(results).
                pair = paired([r["correct"] for r in tuned[1][: len(results)]], scores)
                row["tuned vs this (W/L, p)"] = f"{pair.wins}/{pair.losses}, {pair.p_value:.2g}"
            if system == "tuned" and header.get("training"):
                training = header["training"]
                row["train examples"] = curve_point(training)
                row["train min"] = f"{training['train_seconds'] / 60:.1f}"
                row["train tok/s"] = f"{training['tokens_per_second']:.0f}"
            rows.append(row)
    notes = (
        "Each task's choice stage (pipelines/tasks/TASK.yaml, SmolLM2-135M-Instruct, float32, "
        "`normalize: none`) on the task's full dev split from ../shared/data. zero: no adapter; few: no "
        "adapter, k train examples before the prompt; tuned: the shipped adapter (finetune/tasks/TASK.yaml). "
        "acc is the share of items whose output is the gold label, with Wilson 95% intervals; W/L pairs the "
        "tuned stage with each untuned one item by item (exact McNemar p). items/s is one `Pipeline.batch` "
        f"over the split after a warm-up, batch {args.batch}, 2 torch threads. Command: "
        "python bench/task_suite.py --task TASK; python bench/task_suite.py --report"
    )
    print(record("task_suite", rows, notes))
    curve = learning_curve_rows(args.cache)
    if curve:
        curve_notes = (
            "Each tuned adapter of a task on its full dev split, by the number of training examples (the "
            "recipe's `limit` less those held out for the training loss, 2% and at most 64) and epochs: the "
            "shipped one and those it replaced. Same recipe otherwise (rank-8 LoRA on q/k/v/o, lr 1e-3, "
            "batch 16). Training minutes were measured with other jobs sharing the 2 cores, so they vary "
            "with load."
        )
        print(record("task_suite_learning_curve", curve, curve_notes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=list(TASKS))
    parser.add_argument("--systems", default="zero,few,tuned")
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev items")
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "results" / "tasks")
    parser.add_argument("--report", action="store_true")
    parser.add_argument(
        "--adapter", type=Path, help="tuned: evaluate this adapter instead (a learning-curve point)"
    )
    args = parser.parse_args()
    if args.report:
        report(args)
        return
    if args.task is None:
        parser.error("--task or --report")
    for system in args.systems.split(","):
        if system not in SYSTEMS:
            parser.error(f"unknown system {system!r}; systems: {', '.join(SYSTEMS)}")
        run_system(args.task, system, args)


if __name__ == "__main__":
    main()
