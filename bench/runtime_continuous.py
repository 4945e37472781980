"""Iteration-level batching on a mixed workload: 64 generation requests from concurrent callers, each with
its own max_new_tokens (8 to 128), arriving over time on a fixed seeded schedule, served by `Runtime.submit`.

The same workload runs on this checkout's runtime and on the runtime of an earlier commit (`--baseline`,
default: the commit before iteration-level batching), each in a subprocess of this run, one after the other.
Prints throughput and request latency (arrival to result) and writes bench/results/runtime_continuous.md;
exits 1 if a greedy output differs between the two.

Usage: python bench/runtime_continuous.py [--requests 64] [--mean-gap 0.25] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, questions, record

BASELINE = "e951599"  # the runtime before prefix reuse and iteration-level batching


def schedule(count: int, mean_gap: float, seed: int) -> list[tuple[float, str, int]]:
    """(arrival second, question, max_new_tokens) per request: exponential gaps, a seeded draw."""
    rng = random.Random(seed)
    arrival = 0.0
    plan = []
    for question in questions(count):
        plan.append((arrival, question, rng.randint(8, 128)))
        arrival += rng.expovariate(1 / mean_gap)
    return plan


def worker(plan: list[tuple[float, str, int]], threads: int, device: str | None) -> dict:
    """Serve `plan` with whichever `fslm` is importable; returns latencies, outputs and the makespan."""
    import torch

    from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime

    torch.set_num_threads(threads)
    ref = ModelRef("smollm2-135m-instruct", dtype="float32")
    if device is not None:
        ref = ModelRef(ref.source, dtype="auto", device=device)  # type: ignore[call-arg]
    runtime = Runtime({"smol": ref})
    runtime.base_for("smol")
    results: list[dict] = [{} for _ in plan]
    start = time.perf_counter() + 0.5

    def call(index: int, arrival: float, question: str, tokens: int) -> None:
        time.sleep(max(0.0, start + arrival - time.perf_counter()))
        arrived = time.perf_counter()
        request = GenerationRequest(
            model="smol", prompt=question, params=GenerationParams(max_new_tokens=tokens)
        )
        generation = runtime.submit(request)
        results[index] = {
            "latency": time.perf_counter() - arrived,
            "done": time.perf_counter() - start,
            "text": generation.text,
            "tokens": generation.completion_tokens,
        }

    callers = [threading.Thread(target=call, args=(i, *item)) for i, item in enumerate(plan)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    runtime.close()
    return {"results": results, "makespan": max(r["done"] for r in results)}


def run_worker(plan: list, threads: int, device: str | None, fslm_root: Path | None) -> dict:
    env = dict(os.environ)
    if fslm_root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(fslm_root), str(BENCH)])
    argv = [
        sys.executable,
        __file__,
        "--worker",
        json.dumps({"plan": plan, "threads": threads, "device": device}),
    ]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, cwd=fslm_root or BENCH.parent
    )
    if done.returncode != 0:
        sys.exit(f"worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_tree(revision: str, folder: Path) -> Path:
    """This repository's `fslm` package as it was at `revision`, unpacked into `folder`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "fslm"],
        cwd=BENCH.parent,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def summary(name: str, outcome: dict) -> dict:
    latencies = sorted(r["latency"] for r in outcome["results"])
    tokens = sum(r["tokens"] for r in outcome["results"])
    return {
        "runtime": name,
        "requests": len(latencies),
        "completion tokens": tokens,
        "makespan s": round(outcome["makespan"], 1),
        "tokens/s": round(tokens / outcome["makespan"], 1),
        "p50 latency s": round(statistics.median(latencies), 2),
        "p95 latency s": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--mean-gap", type=float, default=0.25, help="mean seconds between arrivals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", default=BASELINE, help="the git revision whose runtime to compare with")
    parser.add_argument("--device", default=None, help="a device for this checkout's runtime (cuda, …)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec["plan"], spec["threads"], spec["device"])))
        return
    plan = schedule(args.requests, args.mean_gap, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        before = run_worker(plan, args.threads, None, baseline_tree(args.baseline, Path(folder)))
    after = run_worker(plan, args.threads, args.device, None)
    same = sum(a["text"] == b["text"] for a, b in zip(before["results"], after["results"], strict=True))
    rows = [summary(f"before ({args.baseline})", before), summary("iteration-level", after)]
    rows[1]["throughput ×"] = round(rows[1]["tokens/s"] / rows[0]["tokens/s"], 2)
    rows[0]["throughput ×"] = 1.0
    for row in rows:
        print(row)
    print(f"identical outputs: {same} / {len(plan)}")
    notes = (
        f"`python bench/runtime_continuous.py --requests {args.requests} --mean-gap {args.mean_gap} "
        f"--seed {args.seed}`: {args.requests} TriviaQA questions as chat prompts to SmolLM2-135M-Instruct "
        f"(float32, {args.threads} torch threads), max_new_tokens drawn from 8 to 128, arrivals with "
        f"exponential gaps (mean {args.mean_gap} s, seed {args.seed}), one caller thread each, "
        "`Runtime.submit`. Latency: arrival to result. Throughput: completion tokens over the time from the "
        f"first arrival to the last result. Identical greedy outputs: {same} / {len(plan)}."
    )
    print(record("runtime_continuous", rows, notes))
    if same != len(plan):
        sys.exit(1)


if __name__ == "__main__":
    main()
