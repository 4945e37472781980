"""What a LoRA adapter costs per forward pass, by the path peft takes.

peft can route each row of a batch to its own adapter (`adapter_names=[...]`): every LoRA layer then slices
the batch into row groups, one per adapter, and adds each group's update. fslm's runtime takes that path only
when a batch mixes adapters; a batch whose rows share one adapter runs peft's plain path with that adapter
active, and a batch of base rows runs with the adapter layers disabled (`LoadedBase.forward`); the switch
between them happens only when the next batch needs another, since each walks every module. All give the
same logits exactly (tests/test_runtime.py).

This bench times, for SmolLM2-135M-Instruct float32 with a shipped adapter attached, the median of --reps
forward passes of each shape (rows × new tokens, no cache: a decode step is 1 × 1, a prompt 1 × 32, a batched
decode step 32 × 1, a scoring pass 32 × 40) on each path: no peft at all, the mixed-batch routing with
every row on the adapter, the plain path with the adapter active, the plain path with adapters disabled, and
the plain path alternating base and adapter batches (a switch before every pass; the mean of the two).
Then the end-to-end effect: two shipped pipelines answering their task's dev items one at a time (the
one-stage command parser on SNIPS, whose adapter is on every linear layer, and the Banking77 stage, q and v
only) with the
runtime's forward and with a forward that always routes by rows, alternating, outputs compared.

Usage: python bench/runtime_adapter_path.py [--reps 20] [--items 12]
Writes bench/results/runtime_adapter_path.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from common import BENCH, SHARED_DATA, read_jsonl, record, timed_runs

from fslm.pipeline import load_pipeline
from fslm.runtime import loaded
from fslm.runtime.resolve import prepare

SHAPES = ((1, 1), (1, 32), (32, 1), (32, 40))
ADAPTERS = {
    "command parser, one stage (every linear layer)": "command_parser/single",
    "sst2 (q, v)": "tasks/sst2",
}
PIPELINES = {  # title: (pipeline, the task whose dev items it answers)
    "command parser, one stage": ("pipelines/command_parser_single.yaml", "snips"),
    "Banking77 stage": ("pipelines/tasks/banking77.yaml", "banking77"),
}


def median_ms(call: Callable[[], Any], reps: int) -> float:
    return 1000 * statistics.median(timed_runs(call, reps))


def routed_by_rows(self: loaded.LoadedBase, adapter_names: list[str], **model_kwargs: Any) -> Any:
    """The runtime's forward before the plain path: every batch with an adapter attached routed by rows."""
    if self.peft_model is None:
        return self.model(**model_kwargs)
    return self.peft_model(adapter_names=adapter_names, **model_kwargs)


def path_times(base: loaded.LoadedBase, name: str, ids: torch.Tensor, reps: int) -> dict[str, float]:
    """Median milliseconds of one pass over `ids` on each path with adapters attached (`name` active)."""
    rows = ids.shape[0]
    return {
        "routed by rows": median_ms(lambda: routed_by_rows(base, [name] * rows, input_ids=ids), reps),
        "plain, adapter active": median_ms(lambda: base.forward([name] * rows, input_ids=ids), reps),
        "plain, adapters disabled": median_ms(
            lambda: base.forward([loaded.BASE_ADAPTER_NAME] * rows, input_ids=ids), reps
        ),
        "plain, base and adapter batches alternating": median_ms(
            lambda: (
                base.forward([loaded.BASE_ADAPTER_NAME] * rows, input_ids=ids),
                base.forward([name] * rows, input_ids=ids),
            ),
            reps,
        )
        / 2,
    }


def pass_rows(reps: int) -> list[dict]:
    rows = []
    for title, adapter in ADAPTERS.items():
        base = loaded.LoadedBase.load(loaded.BaseKey(prepare("smollm2-135m-instruct"), "float32"))
        inputs = {
            shape: torch.randint(100, 10000, shape, generator=torch.Generator().manual_seed(0))
            for shape in SHAPES
        }
        with torch.inference_mode():
            bare = {
                shape: median_ms(lambda ids=ids, model=base.model: model(input_ids=ids), reps)
                for shape, ids in inputs.items()
            }
            name = base.adapter_name(str(BENCH.parent / "adapters" / adapter))
            for shape, ids in inputs.items():
                found = {"no peft": bare[shape]} | path_times(base, name, ids, reps)
                rows.append(
                    {"adapter": title, "rows × tokens": f"{shape[0]} × {shape[1]}"}
                    | {path: f"{ms:.1f}" for path, ms in found.items()}
                    | {"routed / plain": f"{found['routed by rows'] / found['plain, adapter active']:.2f}"}
                )
    return rows


def pipeline_notes(items: int) -> list[str]:
    runtime_forward = loaded.LoadedBase.forward
    notes = []
    for title, (path, task) in PIPELINES.items():
        dev = [{"text": row["text"]} for row in read_jsonl(SHARED_DATA / task / "dev.jsonl")[: items + 1]]
        pipeline = load_pipeline(BENCH.parent / path, store=":memory:")
        try:
            pipeline.batch(dev[:1])  # load and warm up
            seconds: dict[str, list[float]] = {"runtime": [], "routed by rows": []}
            outputs: dict[str, list[str]] = {}
            for _ in range(2):
                for way, forward in (("routed by rows", routed_by_rows), ("runtime", runtime_forward)):
                    loaded.LoadedBase.forward = forward  # type: ignore[method-assign]
                    started = time.perf_counter()
                    outputs[way] = [pipeline.batch([item])[0].output for item in dev[1:]]
                    seconds[way].append((time.perf_counter() - started) / items)
        finally:
            loaded.LoadedBase.forward = runtime_forward  # type: ignore[method-assign]
            pipeline.close()
        routed, plain = min(seconds["routed by rows"]), min(seconds["runtime"])
        same = "the same outputs" if outputs["runtime"] == outputs["routed by rows"] else "DIFFERENT outputs"
        notes.append(
            f"- {title} ({path}), the first {items} {task} dev items one at a time, best of 2: routed by "
            f"rows {routed:.3f} s/item, runtime {plain:.3f} s/item ({routed / plain:.2f}× faster), {same}"
        )
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=20, help="forward passes timed per path and shape (20)")
    parser.add_argument("--items", type=int, default=12, help="dev items answered one at a time (12)")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = pass_rows(args.reps)
    notes = "\n".join(
        [
            (
                f"Command: `python bench/runtime_adapter_path.py --reps {args.reps} --items {args.items}`. "
                "Median milliseconds per forward pass (no cache), SmolLM2-135M-Instruct float32."
            ),
            "",
            *pipeline_notes(args.items),
        ]
    )
    path = record("runtime_adapter_path", rows, notes)
    print(path.read_text().split("```json")[0])


if __name__ == "__main__":
    main()
