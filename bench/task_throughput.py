"""What tuned task stages cost to run on this CPU: items/s and p50/p95 latency of the stacked command parser
(pipelines/command_parser.yaml) and its one-stage baseline (pipelines/command_parser_single.yaml) on SNIPS
dev commands and of the 77-way Banking77 stage
(pipelines/tasks/banking77.yaml) on Banking77 dev messages, each in batches of --batch and one at a time.

- batched: the items go to `Pipeline.batch` --batch at a time; an item's latency runs from its batch's start
  to the end of its run, so it includes waiting for the rest of its batch's requests.
- one at a time: `Pipeline.invoke` per item, nothing else running; latency is that call's wall time.

Each pipeline is loaded and warmed up (two items) before timing. The run store is a temporary SQLite file, so
recording each run is part of the cost, as it is for users.

Usage: python bench/task_throughput.py [--parser-n 700] [--banking-n 300] [--single-n 100] [--batch 64]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, read_jsonl, record

from fslm.pipeline import load_pipeline

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = {
    "command parser (2 stages)": (ROOT / "pipelines" / "command_parser.yaml", "snips"),
    "command parser, one stage": (ROOT / "pipelines" / "command_parser_single.yaml", "snips"),
    "Banking77 stage (77 options)": (ROOT / "pipelines" / "tasks" / "banking77.yaml", "banking77"),
}


def inputs(task: str, count: int) -> list[dict]:
    return [{"text": row["text"]} for row in read_jsonl(SHARED_DATA / task / "dev.jsonl")][:count]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def batched(pipeline, items: list[dict], size: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(items), size):
        latencies += batch_latencies(pipeline, items[start : start + size])
    return time.perf_counter() - started, latencies


def batch_latencies(pipeline, chunk: list[dict]) -> list[float]:
    """Each item's seconds from the batch's start to the end of its run."""
    started = time.perf_counter()
    ended: list[float] = []
    pipeline.batch(chunk, on_done=lambda index, result: ended.append(time.perf_counter() - started))
    return ended


def one_at_a_time(pipeline, items: list[dict]) -> tuple[float, list[float]]:
    latencies = []
    started = time.perf_counter()
    for item in items:
        begun = time.perf_counter()
        pipeline.invoke(item)
        latencies.append(time.perf_counter() - begun)
    return time.perf_counter() - started, latencies


def row(system: str, mode: str, seconds: float, latencies: list[float]) -> dict:
    return {
        "system": system,
        "mode": mode,
        "items": len(latencies),
        "items/s": f"{len(latencies) / seconds:.2f}",
        "p50 latency s": f"{statistics.median(latencies):.3f}",
        "p95 latency s": f"{percentile(latencies, 0.95):.3f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parser-n", type=int, default=700)
    parser.add_argument("--banking-n", type=int, default=300)
    parser.add_argument("--single-n", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    rows = []
    for system, (path, task) in SYSTEMS.items():
        count = args.parser_n if task == "snips" else args.banking_n
        items = inputs(task, count)
        with tempfile.TemporaryDirectory() as folder:
            pipeline = load_pipeline(path, store=Path(folder) / "runs.sqlite", max_batch_size=args.batch)
            pipeline.batch(items[:2])
            rows.append(row(system, f"batch {args.batch}", *batched(pipeline, items, args.batch)))
            print(rows[-1], flush=True)
            rows.append(row(system, "one at a time", *one_at_a_time(pipeline, items[: args.single_n])))
            print(rows[-1], flush=True)
            pipeline.close()
    notes = (
        "SNIPS dev commands through the stacked command parser (a 7-way choice stage, then a generating "
        "stage of at most 64 tokens, both SmolLM2-135M-Instruct float32 with LoRA adapters), through its "
        "one-stage baseline (one generating stage writing the whole frame) and Banking77 "
        "dev messages through the 77-way choice stage. batch: `Pipeline.batch` over --batch items at a time "
        "(runtime max_batch_size the same); latency from the batch's start to the item's end. one at a time: "
        "`Pipeline.invoke` per item. Model load and a two-item warm-up are not timed. "
        f"Command: python bench/task_throughput.py --parser-n {args.parser_n} --banking-n {args.banking_n} "
        f"--single-n {args.single_n} --batch {args.batch}"
    )
    print(record("task_throughput", rows, notes))


if __name__ == "__main__":
    main()
