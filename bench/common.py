"""Shared helpers for the benchmark scripts: machine description, inputs, result files."""

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fslm.jsonl import json_lines

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SHARED_DATA = BENCH.parent.parent / "shared" / "data"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {sys.version.split()[0]}"
    )


def questions(count: int) -> list[str]:
    """The first `count` TriviaQA dev questions from ../shared/data."""
    return [row["question"] for row in read_jsonl(SHARED_DATA / "triviaqa" / "dev.jsonl")[:count]]


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL file, read as fslm reads data files (`fslm.jsonl`: lines end at \\n only)."""
    if not path.exists():
        where = " (the shared data folder sits beside the repo)" if path.is_relative_to(SHARED_DATA) else ""
        sys.exit(f"benchmark data not found: {path}{where}")
    return [row for _, row in json_lines(path)]


def timed_runs(action: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of `repeats` runs of `action`, after one untimed run (first-call allocations)."""
    action()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def record(name: str, rows: list[dict], notes: str) -> Path:
    """Write a result file: a markdown table plus the raw figures as JSON."""
    RESULTS.mkdir(exist_ok=True)
    header = list(rows[0])
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"# {name}",
        "",
        f"Machine: {machine()}",
        f"Load average when recorded (1, 5, 15 min): {load}",
        "",
        notes,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n\n```json\n" + json.dumps(rows, indent=1) + "\n```\n")
    return path
