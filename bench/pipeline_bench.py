"""Issue 2's targets on SmolLM2-135M with 2 CPU threads.

  1. 32 inputs through a 3-stage pipeline: batched throughput vs one input at a time (target >= 4x)
  2. 4 stages with 4 different adapters on one base: peak RSS vs a 1-stage pipeline (target <= 1.3x)
  3. LangGraph orchestration + recording vs calling the runtime directly for the same generations (<= 5%)
  4. second load of the builtin model (target <= 3 s)

Two direct baselines for 3. The like-for-like one, which the target is judged on, issues the requests the
way the graph does: one thread per input, each chaining its 3 stages through `Runtime.submit`, so each run
reaches its next stage when its previous one ends and joins the running batch there. The other goes stage by
stage in three waves of 32 through `Runtime.generate`: each stage's prompts are prefilled in one pass and
decoded in lockstep, which no concurrent set of runs does; it is kept as a figure, not the target's.

Run: .venv/bin/python bench/pipeline_bench.py   (about 6 minutes; writes bench/results/pipeline.md)
     .venv/bin/python bench/pipeline_bench.py --only throughput   (3. and 1.; prints, records nothing)
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, questions, record

from fslm.nodes.prompt import compile_prompt, render_prompt
from fslm.nodes.stage.node import stage_request
from fslm.pipeline import Pipeline, load_pipeline

torch.set_num_threads(2)
THREE_STAGE = BENCH / "pipelines" / "three_stage.yaml"
INPUTS = 32


def throughput_and_overhead() -> list[dict]:
    texts = questions(INPUTS)
    pipeline = load_pipeline(THREE_STAGE, store=":memory:")
    pipeline.runtime.generate([stage_request(pipeline.spec.stages["restate"], "warm up")])

    started = time.perf_counter()
    one_by_one = [pipeline.invoke(text) for text in texts]
    sequential = time.perf_counter() - started

    # Graph and direct runs alternate, best of three each, so a noisy moment on a shared machine hits all.
    through_graph, chained, waves = float("inf"), float("inf"), float("inf")
    for _ in range(3):
        started = time.perf_counter()
        batched = pipeline.batch(texts)
        through_graph = min(through_graph, time.perf_counter() - started)

        started = time.perf_counter()
        chained_outputs = chained_direct(pipeline, texts)
        chained = min(chained, time.perf_counter() - started)

        started = time.perf_counter()
        wave_outputs = waves_direct(pipeline, texts)
        waves = min(waves, time.perf_counter() - started)

    agree = sum(a.output == b.output for a, b in zip(one_by_one, batched))
    same_chained = sum(r.output == o["answer"] for r, o in zip(batched, chained_outputs))
    same_waves = sum(r.output == o["answer"] for r, o in zip(batched, wave_outputs))
    tokens = sum(m["completion_tokens"] for r in batched for m in r.messages)
    return [
        {
            "measure": "3-stage, 32 inputs, one at a time",
            "seconds": round(sequential, 2),
            "items/s": round(INPUTS / sequential, 3),
            "note": f"{tokens} completion tokens in the batched run",
        },
        {
            "measure": "3-stage, 32 inputs, Pipeline.batch",
            "seconds": round(through_graph, 2),
            "items/s": round(INPUTS / through_graph, 3),
            "note": f"speed-up {sequential / through_graph:.2f}x (target >= 4x); "
            f"{agree}/32 outputs equal to one-at-a-time",
        },
        {
            "measure": "same requests via Runtime.submit, 32 threads chaining their stages",
            "seconds": round(chained, 2),
            "items/s": round(INPUTS / chained, 3),
            "note": (
                f"orchestration + recording {100 * (through_graph - chained) / chained:+.1f}% "
                f"(target <= 5%); {same_chained}/32 outputs identical"
            ),
        },
        {
            "measure": "same generations via Runtime.generate, 3 waves of 32",
            "seconds": round(waves, 2),
            "items/s": round(INPUTS / waves, 3),
            "note": (
                f"Pipeline.batch {100 * (through_graph - waves) / waves:+.1f}% over it (not the target's "
                f"comparison: waves prefill each stage in one pass); {same_waves}/32 outputs identical"
            ),
        },
    ]


def chained_direct(pipeline: Pipeline, texts: list[str]) -> list[dict[str, str]]:
    """The graph's request pattern with no graph and no store: a thread per input submits its stages in
    turn, each prompt rendered from the outputs of the stages before it."""

    def run(text: str) -> dict[str, str]:
        outputs = {"input": text}
        for name, stage in pipeline.spec.stages.items():
            prompt = render_prompt(name, stage, compile_prompt(stage), outputs)
            outputs[name] = pipeline.runtime.submit(stage_request(stage, prompt)).text
        return outputs

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        return list(pool.map(run, texts))


def waves_direct(pipeline: Pipeline, texts: list[str]) -> list[dict[str, str]]:
    """The same generations stage by stage: every input's request for a stage in one `Runtime.generate`."""
    outputs = [{"input": text} for text in texts]
    for name, stage in pipeline.spec.stages.items():
        template = compile_prompt(stage)
        requests = [stage_request(stage, render_prompt(name, stage, template, o)) for o in outputs]
        for o, generation in zip(outputs, pipeline.runtime.generate(requests)):
            o[name] = generation.text
    return outputs


RSS_CHILD = """
import json, sys, torch
torch.set_num_threads(2)
sys.path.insert(0, {bench!r})
from common import peak_rss_mib
from fslm.pipeline import load_pipeline
pipeline = load_pipeline({path!r}, store=":memory:")
result = pipeline.invoke("What is the capital of France?")
print(json.dumps({{"rss": peak_rss_mib(), "stages": len(result.messages)}}))
"""


def make_adapters(directory: Path, count: int) -> list[Path]:
    """`count` random LoRA adapters (r=16, all linear layers) for SmolLM2, so each changes the output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fslm.runtime import prepare

    base = AutoModelForCausalLM.from_pretrained(prepare("smollm2-135m-instruct"))
    paths = []
    for index in range(count):
        torch.manual_seed(index)
        config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
        model = get_peft_model(base, config)
        paths.append(directory / f"adapter{index}")
        model.save_pretrained(paths[-1])
        base = model.unload()
    return paths


def peak_memory(directory: Path) -> list[dict]:
    adapters = make_adapters(directory, 4)
    stage = "    generation: {{max_new_tokens: 16}}\n"
    header = "models:\n  smol: {source: smollm2-135m-instruct, dtype: float32}\nstages:\n"
    one = header + "  s0:\n    model: smol\n    prompt: '{{ input }}'\n" + stage.format()
    four = header + "".join(
        f"  s{i}:\n    model: smol\n    adapter: {path}\n    prompt: '{{{{ input }}}} {i}'\n" + stage.format()
        for i, path in enumerate(adapters)
    )
    rows = []
    for label, text in (("1 stage, no adapter", one), ("4 stages, 4 adapters", four)):
        path = directory / f"{label[0]}.yaml"
        path.write_text(text)
        child = RSS_CHILD.format(bench=str(BENCH), path=str(path))
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
        rows.append({"measure": f"peak RSS, {label}", "MiB": round(json.loads(out.stdout)["rss"], 1)})
    ratio = rows[1]["MiB"] / rows[0]["MiB"]
    rows[1]["note"] = f"{ratio:.3f}x the 1-stage pipeline (target <= 1.3x)"
    rows[0]["note"] = ""
    return [
        {"measure": r["measure"], "seconds": "", "items/s": "", "note": f"{r['MiB']} MiB {r['note']}"}
        for r in rows
    ]


LOAD_CHILD = """
import time
from fslm.runtime import ModelRef, Runtime
started = time.perf_counter()
Runtime({"smol": ModelRef("smollm2-135m-instruct", dtype="float32")}).base_for("smol")
print(time.perf_counter() - started)
"""


def second_load() -> list[dict]:
    subprocess.run(
        [sys.executable, "-m", "fslm.cli.main", "models", "pull", "smollm2-135m-instruct"],
        check=True,
        capture_output=True,
    )
    seconds = min(
        float(
            subprocess.run(
                [sys.executable, "-c", LOAD_CHILD], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for _ in range(3)
    )
    return [
        {
            "measure": "second load of smollm2-135m-instruct (cached)",
            "seconds": round(seconds, 2),
            "items/s": "",
            "note": "best of 3 fresh processes, import time excluded (target <= 3 s)",
        }
    ]


NOTES = """Script: `bench/pipeline_bench.py`. Greedy decoding, float32 weights.

Orchestration + recording is judged against the same requests issued the way the graph issues them (a
thread per input chaining its stages through `Runtime.submit`). The three waves of `Runtime.generate`
prefill each stage's 32 prompts in one pass and decode them in lockstep; concurrent runs reach their stages
at different times and join the running batch as they come, which costs more decode steps and more, smaller
prefill passes, so the graph's margin over the waves is mostly the request pattern, not the graph."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["throughput"], help="run only the throughput and overhead part; records nothing"
    )
    only = parser.parse_args().only
    rows = []
    if only is None:
        rows += second_load()
        with tempfile.TemporaryDirectory() as directory:
            rows += peak_memory(Path(directory))
    rows += throughput_and_overhead()
    table = Table("measure", "seconds", "items/s", "note", title="pipeline benchmark")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    Console().print(table)
    if only is None:
        print(f"recorded in {record('pipeline', rows, NOTES)}")


if __name__ == "__main__":
    main()
