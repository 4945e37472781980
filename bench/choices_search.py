"""Best-first search against full scoring on a many-option choice stage: the tuned 77-way Banking77 stage
(pipelines/tasks/banking77.yaml, `normalize: none`) on the first --n Banking77 dev messages, once with
`search: full` and once with `search: best_first`, each in its own runtime in this process, after a warm-up.

Prints items/s for both, the speed-up, how many picks are identical, the largest difference between the two
runs' log-probabilities of the chosen option, and how many options the search completed per item.

Usage: python bench/choices_search.py [--n 300] [--batch 32] [--task banking77]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, read_jsonl, record

from fslm.pipeline import Pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.spec import load_spec
from fslm.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def run(spec, search: str, items: list[dict], batch: int) -> tuple[float, list[dict]]:
    stage = spec.stages["label"].model_copy(update={"search": search})
    variant = spec.model_copy(update={"stages": {"label": stage}})
    refs = {name: ModelRef(source=model.source, dtype=model.dtype) for name, model in spec.models.items()}
    with tempfile.TemporaryDirectory() as folder, Runtime(refs, max_batch_size=batch) as runtime:
        pipeline = Pipeline(variant, runtime, open_store(Path(folder) / "runs.sqlite"))
        pipeline.batch(items[:2])
        started = time.perf_counter()
        results = pipeline.batch(items)
        seconds = time.perf_counter() - started
    return seconds, [result.messages[-1]["choices"] for result in results]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--task", default="banking77")
    args = parser.parse_args()
    spec = load_spec(ROOT / "pipelines" / "tasks" / f"{args.task}.yaml")
    items = [{"text": row["text"]} for row in read_jsonl(SHARED_DATA / args.task / "dev.jsonl")][: args.n]
    full_seconds, full = run(spec, "full", items, args.batch)
    print(f"full: {len(items) / full_seconds:.2f} items/s", flush=True)
    search_seconds, searched = run(spec, "best_first", items, args.batch)
    print(f"best_first: {len(items) / search_seconds:.2f} items/s", flush=True)
    same = sum(a["chosen"] == b["chosen"] for a, b in zip(full, searched, strict=True))
    gap = max(
        abs(a["scorers"][0]["logprobs"][a["chosen"]] - b["scorers"][0]["logprobs"][b["chosen"]])
        for a, b in zip(full, searched, strict=True)
        if a["chosen"] == b["chosen"]
    )
    options = len(full[0]["options"])
    completed = [options - len(rec.get("pruned", [])) for rec in searched]
    rows = [
        {
            "task": args.task,
            "options": options,
            "items": len(items),
            "full items/s": f"{len(items) / full_seconds:.2f}",
            "best_first items/s": f"{len(items) / search_seconds:.2f}",
            "speed-up": f"{full_seconds / search_seconds:.2f}x",
            "identical picks": f"{same}/{len(items)}",
            "max |dlogP| of pick": f"{gap:.1e}",
            "options completed per item (median, max)": f"{statistics.median(completed):g}, {max(completed)}",
        }
    ]
    notes = (
        f"The tuned {args.task} choice stage (pipelines/tasks/{args.task}.yaml, SmolLM2-135M-Instruct "
        f"float32, normalize: none) on the first {len(items)} dev items, `Pipeline.batch`, runtime "
        f"max_batch_size {args.batch}, search: full then search: best_first in one process. "
        f"Command: python bench/choices_search.py --n {args.n} --batch {args.batch} --task {args.task}"
    )
    print(record(f"choices_search_{args.task}", rows, notes))


if __name__ == "__main__":
    main()
