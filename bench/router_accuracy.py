"""Routing accuracy of pipelines/math_router.yaml: how often its classifier stage sends a question where it
belongs (GSM8K word problems to `math`, everything else to `other`).

Only the classifier runs: the pipeline's `route` stage (the reusable stage stages/math_or_other.yaml, as the
pipeline uses it) becomes a one-stage pipeline, run over the questions with `Pipeline.batch`; its output is
the option it chose. The downstream stages, which generate, are not run: they do not change the route.

Items (seed 0, fixed): GSM8K train questions are `math`; TriviaQA dev, NQ dev and ARC-Challenge (train)
questions are `other`, an equal share from each. Each source is shuffled once; the `eval` slice (default
150 math + 150 other) comes first, the `tune` slice (30 + 30, used to choose the prompt's wording) after it,
so the two never overlap. Questions that appear in the stage's prompt (its few-shot examples) are left out of
both. Accuracy has a 95% Wilson interval; the confusion counts are per source.

Usage: python bench/router_accuracy.py [--slice eval|tune] [--n 300] [--batch 32]
Writes bench/results/router_accuracy.md (the eval slice) or router_accuracy_tune.md.
"""

import argparse
import random
import time
from collections import Counter
from pathlib import Path

from common import SHARED_DATA, read_jsonl, record

from fslm.eval.stats import interval95
from fslm.pipeline import load_pipeline
from fslm.spec.loader import load_spec
from fslm.spec.models import END, EdgeSpec, PipelineSpec

PIPELINE = Path(__file__).resolve().parent.parent / "pipelines" / "math_router.yaml"
STAGE = "route"
MATH = "math"
SOURCES = {
    "gsm8k": ("gsm8k/train.jsonl", "math"),
    "triviaqa": ("triviaqa/dev.jsonl", "other"),
    "nq": ("nq/dev.jsonl", "other"),
    "arc": ("arc-challenge/train.jsonl", "other"),
}
TUNE_PER_CLASS = 30
SEED = 0


def questions(file: str) -> list[str]:
    path = SHARED_DATA / file
    return [row["question"] for row in read_jsonl(path)]


def classifier(spec: PipelineSpec) -> PipelineSpec:
    """The pipeline cut down to its classifier stage, which then ends every run and is its output."""
    edge = EdgeSpec.model_validate({"from": STAGE, "to": END})
    return spec.model_copy(
        update={"stages": {STAGE: spec.stages[STAGE]}, "edges": [edge], "entry": STAGE, "output": STAGE}
    )


def items(slice_name: str, n: int, prompt: str) -> list[dict]:
    """`n` labelled questions of the slice: half math, the other half shared among the other sources."""
    others = [name for name, (_, label) in SOURCES.items() if label != MATH]
    per_source = {"gsm8k": n // 2} | {name: (n - n // 2) // len(others) for name in others}
    tune = {"gsm8k": TUNE_PER_CLASS} | {name: TUNE_PER_CLASS // len(others) for name in others}
    chosen = []
    for name, (file, label) in SOURCES.items():
        pool = [question for question in questions(file) if question not in prompt]
        random.Random(SEED).shuffle(pool)
        start = 0 if slice_name == "eval" else per_source[name]
        size = per_source[name] if slice_name == "eval" else tune[name]
        chosen += [{"source": name, "label": label, "question": q} for q in pool[start : start + size]]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slice", choices=("eval", "tune"), default="eval")
    parser.add_argument("--n", type=int, default=300, help="items of the eval slice")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    spec = classifier(load_spec(PIPELINE))
    labelled = items(args.slice, args.n, spec.stages[STAGE].prompt)
    pipeline = load_pipeline(spec, store=":memory:", max_batch_size=args.batch)
    try:
        started = time.perf_counter()
        results = pipeline.batch([item["question"] for item in labelled])
        seconds = time.perf_counter() - started
    finally:
        pipeline.close()
    routes = [result.output for result in results]
    correct = [float(route == item["label"]) for route, item in zip(routes, labelled, strict=True)]
    bounds = interval95(correct)
    confusion = Counter((item["source"], route) for route, item in zip(routes, labelled, strict=True))
    options = spec.stages[STAGE].choices
    rows = [
        {
            "source": name,
            "true route": label,
            "n": sum(item["source"] == name for item in labelled),
            **{f"routed {option}": confusion[name, option] for option in options},
        }
        for name, (_, label) in SOURCES.items()
    ]
    accuracy = sum(correct) / len(correct)
    notes = (
        f"Classifier stage `{STAGE}` of pipelines/{PIPELINE.name} (stages/math_or_other.yaml), "
        f"{args.slice} slice, seed {SEED}: routing accuracy **{100 * accuracy:.1f}%** "
        f"[{100 * bounds.low:.1f}, {100 * bounds.high:.1f}] (95% {bounds.method}) on n = {len(labelled)} "
        f"({sum(correct):.0f} right); {len(labelled) / seconds:.1f} items/s (models loading included). "
        f"Command: `python bench/router_accuracy.py --slice {args.slice} --n {args.n}`."
    )
    path = record("router_accuracy" if args.slice == "eval" else "router_accuracy_tune", rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
