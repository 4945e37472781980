"""Run-store write throughput, SQLite against PostgreSQL, under 8 concurrent runs.

8 processes each record runs of a three-stage pipeline, one after another, into the same store; generation
is instant (a scripted runtime), so what is timed is recording: the run index rows and LangGraph's
checkpoints (4 per run) and pending writes. Reported: runs recorded per second over all 8 processes.

The PostgreSQL server is a throwaway one started as the tests start it (tests/postgres_server.py), on this
machine, with fsync on (SQLite syncs its commits too); give --url to measure another server instead.

Usage: python bench/scale_store.py [--writers 8] [--runs 40] [--url postgresql://…]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, record

STAGES = """models:
  m: {source: %s}
stages:
  a: {model: m, prompt: "A {{ input }}"}
  b: {model: m, prompt: "B {{ a }}"}
  c: {model: m, prompt: "C {{ b }}"}
"""


class InstantRuntime:
    """Answers every prompt at once, so that a run's time is its recording."""

    max_batch_size = 1

    def submit(self, request):
        from fslm.runtime.types import Generation

        return Generation("an answer of a few words", request.prompt, 8, 6, 0.0, "eos")

    def close(self) -> None:
        pass


def writer(pipeline_file: str, store: str, runs: int, name: str, start, done) -> None:
    from fslm.pipeline import Pipeline
    from fslm.spec import load_spec
    from fslm.store import open_store

    pipeline = Pipeline(load_spec(pipeline_file), InstantRuntime(), open_store(store))
    start.wait()
    for number in range(runs):
        pipeline.invoke(f"writer {name}, input {number}")
    done.put(name)


def throughput(pipeline_file: Path, store: str, writers: int, runs: int) -> float:
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(writers + 1), context.Queue()
    processes = [
        context.Process(target=writer, args=(str(pipeline_file), store, runs, str(i), start, done))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    start.wait()  # every writer has its store open
    began = time.perf_counter()
    for _ in processes:
        done.get(timeout=600)
    seconds = time.perf_counter() - began
    for process in processes:
        process.join()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=40, help="runs per writer")
    parser.add_argument("--url", help="a PostgreSQL database to measure (default: start a throwaway server)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    (scratch / "model").mkdir()
    (scratch / "model" / "config.json").write_text("{}")
    pipeline_file = scratch / "p.yaml"
    pipeline_file.write_text(STAGES % (scratch / "model"))

    server = None
    if args.url is None:
        sys.path.insert(0, str(BENCH.parent / "tests"))
        import postgres_server

        server = postgres_server.start_server(fsync=True)
        args.url = server.create_database("bench")
    load_before = os.getloadavg()[0]
    rows = []
    try:
        for name, store in (("SQLite", str(scratch / "runs.sqlite")), ("PostgreSQL", args.url)):
            seconds = throughput(pipeline_file, store, args.writers, args.runs)
            total = args.writers * args.runs
            rows.append(
                {
                    "store": name,
                    "writers": args.writers,
                    "runs": total,
                    "seconds": round(seconds, 2),
                    "runs/s": round(total / seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    finally:
        if server is not None:
            server.stop()
    notes = (
        f"{args.writers} processes at once, each recording {args.runs} runs of a three-stage pipeline "
        "(4 checkpoints a run) with instant generation. PostgreSQL 15 on this machine (fsync on). "
        f"1-minute load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} (other "
        "processes share the 2 cores)."
    )
    print(notes)
    print(record("scale_store", rows, notes))


if __name__ == "__main__":
    main()
