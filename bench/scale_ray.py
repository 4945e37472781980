"""Items per second of one batch on the local engine, Ray with 1 actor and Ray with 2 actors: the same
TriviaQA questions through the same SmolLM2 pipeline, in one process, one after the other.

Each engine first runs a warm-up batch (loading the model; for Ray, starting the actors), then the timed
batch. The local engine and Ray's 1 actor get --threads torch threads each (the overhead compares these two);
Ray's 2 actors get 1 CPU (1 thread) each. Every engine's outputs are checked against the local engine's
(greedy decoding: they must be equal). Writes bench/results/scale_ray.md (--threads 1) or
scale_ray_2threads.md (--threads 2).

Usage: python bench/scale_ray.py [--items 48] [--max-new-tokens 16] [--batch-size 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import questions, record

PIPELINE = """name: scale_bench
models:
  smol: {source: smollm2-135m-instruct, dtype: float32}
stages:
  answer:
    model: smol
    prompt: "Answer in a few words. Question: {{ input }}"
    generation: {max_new_tokens: %d}
"""


def timed(engine, items: list[str], warm_up: list[str]) -> tuple[float, float, list]:
    started = time.perf_counter()
    engine.batch(warm_up)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    results = engine.batch(items)
    return cold, time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, choices=[1, 2], default=1)
    args = parser.parse_args()

    import ray
    import torch

    from fslm.engines.ray_engine import RayOptions, RayPipeline
    from fslm.pipeline import load_pipeline

    all_questions = questions(args.items + 4)
    warm_up, items = all_questions[:4], all_questions[4:]
    scratch = Path(tempfile.mkdtemp())
    pipeline_file = scratch / "scale_bench.yaml"
    pipeline_file.write_text(PIPELINE % args.max_new_tokens)
    store = scratch / "runs.sqlite"
    load_before = os.getloadavg()[0]

    def fresh():
        return load_pipeline(pipeline_file, store=store, max_batch_size=args.batch_size)

    torch.set_num_threads(args.threads)
    threads = args.threads
    engines = [
        (f"local ({threads} torch threads)", lambda: fresh()),
        (
            f"ray, 1 actor ({threads} CPUs)",
            lambda: RayPipeline(fresh(), RayOptions(actors=1, cpus_per_actor=threads)),
        ),
        ("ray, 2 actors (1 CPU each)", lambda: RayPipeline(fresh(), RayOptions(actors=2, cpus_per_actor=1))),
    ]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    rows, reference = [], None
    for name, make in engines:
        engine = make()
        try:
            cold, seconds, results = timed(engine, items, warm_up)
        finally:
            engine.close()
        outputs = [result.output for result in results]
        reference = reference or outputs
        same = sum(a == b for a, b in zip(outputs, reference, strict=True))
        rows.append(
            {
                "engine": name,
                "items": len(items),
                "seconds": round(seconds, 2),
                "items/s": round(len(items) / seconds, 2),
                "warm-up seconds (4 items, incl. model load)": round(cold, 2),
                "outputs equal to local": f"{same}/{len(items)}",
            }
        )
        print(rows[-1], flush=True)
    ray.shutdown()
    overhead = rows[1]["seconds"] / rows[0]["seconds"] - 1
    load_after = os.getloadavg()[0]
    notes = (
        f"SmolLM2-135M-Instruct (builtin, float32), one stage, greedy, max_new_tokens {args.max_new_tokens}, "
        f"--batch-size {args.batch_size}; {len(items)} TriviaQA dev questions, the same for every engine, "
        f"timed after a 4-item warm-up batch. Ray: local cluster, ray.init(num_cpus=2).\n\n"
        f"Ray overhead against local on one actor: {overhead:+.1%} (target <= 15%).\n"
        f"1-minute load average before / after: {load_before:.2f} / {load_after:.2f} (other processes share "
        "the 2 cores, so absolute figures move with them)."
    )
    print(notes)
    print(record("scale_ray" if threads == 1 else "scale_ray_2threads", rows, notes))


if __name__ == "__main__":
    main()
