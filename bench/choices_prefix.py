"""Prefix reuse in choice scoring: a 5-shot MMLU choice stage (bench/choices_quality.py's lm-eval `mmlu`
format: five solved dev examples of the item's subject, options listed A-D, continuations " A" … " D") on the
first --n MMLU val items, SmolLM2-135M-Instruct in float32, 2 torch threads (--threads), the runtime's prefix
reuse off and then on, in one process, on the same items.

Prints items/s, the speed-up, how many picks are identical and the largest difference of an option's
log-probability between the two; writes bench/results/choices_prefix.md. Exits 1 if a pick differs.

Usage: python bench/choices_prefix.py [--n 100] [--batch 32] [--threads 2] [--note "text for the result file"]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from choices_quality import mmlu_items
from common import record

from fslm.pipeline import load_pipeline
from fslm.runtime import ModelRef, Runtime

SMOL = ModelRef("smollm2-135m-instruct", dtype="float32")
STAGE = {
    "name": "mmlu_5shot",
    "models": {"smol": {"source": SMOL.source, "dtype": SMOL.dtype}},
    "inputs": ["prompt_text", "choices"],
    "stages": {
        "answer": {
            "model": "smol",
            "prompt": "{{ prompt_text }}",
            "choices": "{{ choices }}",
            "normalize": "none",
        }
    },
}
# Shares no prefix with the items: loads and warms the model without filling the prefix cache for them.
WARM_UP = {"prompt_text": "Question: Is this a warm-up?\nAnswer:", "choices": ["yes", "no"]}


def run(path: Path, inputs: list[dict], reuse: bool, batch: int) -> tuple[float, list[dict]]:
    runtime = Runtime({"smol": SMOL}, reuse_prefixes=reuse, max_batch_size=batch)
    pipeline = load_pipeline(path, store=":memory:", runtime=runtime)
    try:
        pipeline.batch([WARM_UP])
        started = time.perf_counter()
        results = pipeline.batch(inputs)
        return time.perf_counter() - started, [result.messages[-1] for result in results]
    finally:
        pipeline.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--note", default="", help="appended to the result file's notes (e.g. the load)")
    # 1 for a check beside other jobs: two threads that must meet at every operation wait for each other
    # when the cores are busy, which hides the work saved.
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # mmlu_items spaces its picks through the val file; asked for more than it holds, it takes every item in
    # file order, of which these are the first n.
    items = mmlu_items(sys.maxsize)[: args.n]
    inputs = [{"prompt_text": item["prompt_text"], "choices": item["choices"]} for item in items]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mmlu_5shot.yaml"
        path.write_text(json.dumps(STAGE))
        runs = {reuse: run(path, inputs, reuse, args.batch) for reuse in (False, True)}
    off, on = (runs[reuse][1] for reuse in (False, True))
    same = sum(a["choices"]["chosen"] == b["choices"]["chosen"] for a, b in zip(off, on, strict=True))
    delta = max(
        abs(x - y)
        for a, b in zip(off, on, strict=True)
        for x, y in zip(
            a["choices"]["scorers"][0]["logprobs"], b["choices"]["scorers"][0]["logprobs"], strict=True
        )
    )
    rows = []
    for reuse, (seconds, messages) in runs.items():
        correct = sum(m["choices"]["chosen"] == item["gold"] for m, item in zip(messages, items, strict=True))
        rows.append(
            {
                "prefix reuse": "on" if reuse else "off",
                "items": len(items),
                "seconds": round(seconds, 1),
                "items/s": round(len(items) / seconds, 3),
                "speed-up": round(runs[False][0] / seconds, 2),
                "prompt tokens / item": round(sum(m["prompt_tokens"] for m in messages) / len(items), 1),
                "cached / item": round(
                    sum(m.get("cached_prompt_tokens", 0) for m in messages) / len(items), 1
                ),
                "acc": round(correct / len(items), 3),
            }
        )
    for row in rows:
        print(row)
    print(f"identical picks: {same} / {len(items)}; max |Δ log-prob|: {delta:.3g}")
    notes = (
        f"`python bench/choices_prefix.py --n {args.n} --batch {args.batch} --threads {args.threads}`: "
        f"a 5-shot MMLU choice stage (choices_quality.py's format) on the first {args.n} MMLU val items, "
        f"through `Pipeline.batch`, SmolLM2-135M-Instruct float32, {args.threads} torch threads, model "
        "loaded and warmed before the clock. Same items, same process, reuse off then on "
        f"(`Runtime(reuse_prefixes=...)`). Identical picks: {same} / {len(items)}; max |Δ log-prob| over all "
        f"options: {delta:.3g}."
    )
    if args.note:
        notes += f" {args.note}"
    print(record("choices_prefix", rows, notes))
    if same != len(items):
        sys.exit(1)


if __name__ == "__main__":
    main()
