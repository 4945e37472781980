"""FSLM's central claim on GSM8K: is a stack of stage-tuned small models better than one tuned model?

Trains the three shipped recipes (finetune/gsm8k_solve.yaml, gsm8k_answer.yaml and the baseline
gsm8k_single.yaml, which gets the same 200 problems and as many steps as the two stack recipes together), then
scores on the same held-out GSM8K items (finetune/data/gsm8k_heldout.jsonl, numeric answer):
  1. the untuned stack (pipelines/gsm8k_stack.yaml)
  2. the single LoRA-tuned model (pipelines/gsm8k_single.yaml + its adapter)
  3. the tuned stack (each stage with its own adapter)

Run: python bench/finetune_stack.py [--items N] [--retrain]
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import RESULTS, record

from fslm.eval.items import read_eval_items
from fslm.eval.runner import evaluate
from fslm.finetune import Callbacks, finetune, load_recipe
from fslm.finetune.attach import attach_adapter
from fslm.finetune.train import StepLog
from fslm.pipeline import load_pipeline

REPO = Path(__file__).resolve().parent.parent
RECIPES = {"solve": "gsm8k_solve.yaml", "answer": "gsm8k_answer.yaml", "single": "gsm8k_single.yaml"}


def train(name: str, retrain: bool) -> dict:
    recipe = load_recipe(REPO / "finetune" / RECIPES[name])
    existing = recipe.output / "training.json"
    if existing.is_file() and not retrain:
        return json.loads(existing.read_text())
    print(f"training {name} …", flush=True)

    def report(log: StepLog) -> None:
        if log.step % 10 == 0 or log.step == log.total_steps:
            print(
                f"  step {log.step}/{log.total_steps} loss {log.loss:.3f} {log.tokens_per_second:.0f} tok/s",
                flush=True,
            )

    return finetune(recipe, force=True, callbacks=Callbacks(on_step=report)).record


def tuned_copy(pipeline: str, adapters: dict[str, str], folder: Path) -> Path:
    copy = folder / Path(pipeline).name
    shutil.copy(REPO / "pipelines" / pipeline, copy)
    for stage, recipe_name in adapters.items():
        attach_adapter(copy, stage, load_recipe(REPO / "finetune" / RECIPES[recipe_name]).output)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    records = {name: train(name, args.retrain) for name in RECIPES}
    items = read_eval_items(REPO / "finetune" / "data" / "gsm8k_heldout.jsonl", "input", "answer", args.items)
    store = Path(tempfile.mkdtemp()) / "runs.sqlite"
    with tempfile.TemporaryDirectory() as folder:
        systems = {
            "untuned stack": REPO / "pipelines" / "gsm8k_stack.yaml",
            "single tuned model": tuned_copy(
                "gsm8k_single.yaml", {"solve_and_answer": "single"}, Path(folder)
            ),
            "tuned stack": tuned_copy(
                "gsm8k_stack.yaml", {"solve": "solve", "answer": "answer"}, Path(folder)
            ),
        }
        rows, per_item = [], []
        for label, path in systems.items():
            pipeline = load_pipeline(path, store=store, max_batch_size=32)
            started = time.perf_counter()
            report = evaluate(pipeline, items, "numeric")
            pipeline.close()
            print(f"{label}: {report.mean:.3f}", flush=True)
            rows.append(
                {
                    "system": label,
                    "accuracy": round(report.mean, 3),
                    "correct": sum(int(item.score) for item in report.items),
                    "items": len(items),
                    "eval_seconds": round(time.perf_counter() - started, 1),
                }
            )
            per_item += [{"system": label, **row} for row in report.rows()]
    steps = {name: record["recipe"]["train"]["max_steps"] for name, record in records.items()}
    tokens = {name: record["train_tokens"] for name, record in records.items()}
    notes = (
        f"GSM8K, numeric answer accuracy on the same {len(items)} held-out items (train items 7000+, never "
        "trained on). SmolLM2-135M-Instruct, float32, greedy. Training: 200 problems; the stack's recipes "
        f"take {steps['solve']} + {steps['answer']} steps ({tokens['solve']} + {tokens['answer']} tokens), "
        f"the single model {steps['single']} steps ({tokens['single']} tokens), LoRA r=16 on all linear "
        f"layers. 1-minute load average at the start: {load:.2f}. Per-item outputs (run ids into the run "
        "store) are in finetune_stack_items.jsonl."
    )
    (RESULTS / "finetune_stack_items.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in per_item)
    )
    print(record("finetune_stack", rows, notes))


if __name__ == "__main__":
    main()
