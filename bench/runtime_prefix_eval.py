"""Prefix reuse on a few-shot eval: the eval runner (what `fslm eval` calls) on TriviaQA dev items with the
shared 5-shot prompt.txt before each question, SmolLM2-135M-Instruct in float32, 2 torch threads, the
runtime's prefix reuse off and on, in one process, one after the other.

Prints a table and writes bench/results/runtime_prefix_eval.md; exits 1 if an output differs between the two.

Usage: python bench/runtime_prefix_eval.py [--n 300] [--max-new-tokens 16]
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
from common import SHARED_DATA, read_jsonl, record

from fslm.eval.items import EvalItem
from fslm.eval.runner import evaluate
from fslm.pipeline import load_pipeline
from fslm.runtime import ModelRef, Runtime

SMOL = ModelRef("smollm2-135m-instruct", dtype="float32")


def pipeline_yaml(max_new_tokens: int) -> str:
    shots = (SHARED_DATA / "triviaqa" / "prompt.txt").read_text().rstrip("\n")
    prompt = shots + "\n\nQuestion: {{ input }}\nAnswer:"
    return json.dumps(
        {
            "name": "trivia_5shot",
            "models": {"smol": {"source": SMOL.source, "dtype": SMOL.dtype}},
            "stages": {
                "answer": {
                    "model": "smol",
                    "chat_template": False,
                    "prompt": prompt,
                    "generation": {"max_new_tokens": max_new_tokens, "stop": ["\n"]},
                }
            },
        }
    )


def trivia_items(count: int) -> list[EvalItem]:
    records = read_jsonl(SHARED_DATA / "triviaqa" / "dev.jsonl")[:count]
    return [EvalItem(r["question"], r["answer"]) for r in records]


def run(path: Path, items: list[EvalItem], reuse: bool) -> tuple[float, object, Runtime]:
    runtime = Runtime({"smol": SMOL}, reuse_prefixes=reuse)
    runtime.base_for("smol")  # load before the clock starts
    pipeline = load_pipeline(path, store=":memory:", runtime=runtime)
    started = time.perf_counter()
    report = evaluate(pipeline, items, "contains")
    return time.perf_counter() - started, report, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    items = trivia_items(args.n)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trivia_5shot.yaml"
        path.write_text(pipeline_yaml(args.max_new_tokens))
        runs = {reuse: run(path, items, reuse) for reuse in (False, True)}
    outputs = {reuse: [row["output"] for row in report.rows()] for reuse, (_, report, _) in runs.items()}
    same = sum(a == b for a, b in zip(outputs[False], outputs[True], strict=True))
    rows = []
    for reuse, (seconds, report, runtime) in runs.items():
        rows.append(
            {
                "prefix reuse": "on" if reuse else "off",
                "items": len(items),
                "seconds": round(seconds, 1),
                "items/s": round(len(items) / seconds, 2),
                "speed-up": round(runs[False][0] / seconds, 2),
                "contains": round(report.mean, 3),
                "batches": runtime.stats.batches,
                "prompt tokens / item": round(runtime.stats.prompt_tokens / len(items), 1),
                "cached / item": round(runtime.stats.cached_prompt_tokens / len(items), 1),
            }
        )
    for row in rows:
        print(row)
    print(f"identical outputs: {same} / {len(items)}")
    notes = (
        f"`python bench/runtime_prefix_eval.py --n {args.n} --max-new-tokens {args.max_new_tokens}`: "
        "the eval runner (`fslm.eval.runner.evaluate`, what `fslm eval` calls) on the first "
        f"{args.n} TriviaQA dev items, 5-shot prompt.txt, raw prompt (no chat template), greedy, stop at a "
        "newline, SmolLM2-135M-Instruct float32, 2 torch threads. Same items, same process, reuse off then "
        f"on (`Runtime(reuse_prefixes=...)`). Identical outputs: {same} / {len(items)}."
    )
    print(record("runtime_prefix_eval", rows, notes))
    if same != len(items):
        sys.exit(1)


if __name__ == "__main__":
    main()
