"""The runtime on a CUDA GPU: what batched-vs-alone equality holds per dtype and attention kernel, decode
speed at batch 1 and 32, and prefix reuse on the few-shot TriviaQA eval.

1. Last-token logits of 16 chat prompts (TriviaQA questions) computed alone and left-padded in one batch,
   with SDPA and with eager attention, in bfloat16 and float32: the largest absolute difference.
2. Greedy generations (32 tokens) through `Runtime.generate`, alone and batched: how many are identical.
3. Decode tokens/s of `Runtime.generate` at batch 1 and 32 (64 new tokens each).
4. The eval of bench/runtime_prefix_eval.py on the GPU, prefix reuse off and on.

Needs a CUDA build of torch and a GPU; writes bench/results/runtime_gpu.md.

Usage: python bench/runtime_gpu.py [--device cuda] [--eval-items 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import questions, record
from runtime_prefix_eval import pipeline_yaml, trivia_items

from fslm.eval.runner import evaluate
from fslm.pipeline import load_pipeline
from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime, prepare


def logit_gap(device: str, dtype: torch.dtype, attention: str, prompts: list[str]) -> float:
    """The largest |logit| difference between each prompt alone and the same prompt in a padded batch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attention).to(device)
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    with torch.inference_mode():
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        together = model(**batch, position_ids=positions).logits[:, -1].float()
        gap = 0.0
        for i, text in enumerate(texts):
            alone_ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
            alone = model(**alone_ids).logits[0, -1].float()
            gap = max(gap, float((alone - together[i]).abs().max()))
    return gap


def greedy_agreement(device: str, dtype: str, prompts: list[str]) -> int:
    runtime = Runtime({"smol": ModelRef("smollm2-135m-instruct", dtype=dtype, device=device)})
    params = GenerationParams(max_new_tokens=32)
    requests = [GenerationRequest(model="smol", prompt=p, params=params) for p in prompts]
    batched = runtime.generate(requests)
    alone = [runtime.generate([r])[0] for r in requests]
    return sum(a.text == b.text for a, b in zip(alone, batched, strict=True))


def decode_speed(device: str, dtype: str, batch: int) -> float:
    runtime = Runtime(
        {"smol": ModelRef("smollm2-135m-instruct", dtype=dtype, device=device)}, max_batch_size=batch
    )
    params = GenerationParams(max_new_tokens=64)
    requests = [
        GenerationRequest(model="smol", prompt=q, chat_template=False, params=params)
        for q in questions(batch)
    ]
    runtime.generate(requests[:1])  # warm-up
    torch.cuda.synchronize()
    started = time.perf_counter()
    generations = runtime.generate(requests)
    torch.cuda.synchronize()
    return sum(g.completion_tokens for g in generations) / (time.perf_counter() - started)


def eval_seconds(device: str, dtype: str, items: int, reuse: bool) -> tuple[float, list[str]]:
    runtime = Runtime(
        {"smol": ModelRef("smollm2-135m-instruct", dtype=dtype, device=device)}, reuse_prefixes=reuse
    )
    runtime.base_for("smol")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trivia_5shot.yaml"
        path.write_text(pipeline_yaml(16).replace('"float32"', f'"{dtype}"'))
        pipeline = load_pipeline(path, store=":memory:", runtime=runtime)
        started = time.perf_counter()
        report = evaluate(pipeline, trivia_items(items), "contains")
    return time.perf_counter() - started, [item.output for item in report.items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--eval-items", type=int, default=300)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this bench runs on a GPU machine (CPU figures: bench/runtime_prefix_eval.py)")
    prompts = questions(16)
    rows = []
    for dtype_name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        gaps = {
            attention: logit_gap(args.device, dtype, attention, prompts) for attention in ("sdpa", "eager")
        }
        off, off_outputs = eval_seconds(args.device, dtype_name, args.eval_items, reuse=False)
        on, on_outputs = eval_seconds(args.device, dtype_name, args.eval_items, reuse=True)
        same = sum(a == b for a, b in zip(off_outputs, on_outputs, strict=True))
        rows.append(
            {
                "dtype": dtype_name,
                "max logit gap, SDPA": f"{gaps['sdpa']:.2e}",
                "max logit gap, eager": f"{gaps['eager']:.2e}",
                "greedy batched = alone (of 16)": greedy_agreement(args.device, dtype_name, prompts),
                "decode tok/s, batch 1": round(decode_speed(args.device, dtype_name, 1), 1),
                "decode tok/s, batch 32": round(decode_speed(args.device, dtype_name, 32), 1),
                f"eval {args.eval_items} items, reuse off s": round(off, 1),
                "reuse on s": round(on, 1),
                "speed-up": round(off / on, 2),
                "same outputs": f"{same} / {len(on_outputs)}",
            }
        )
        print(rows[-1])
    notes = (
        f"`python bench/runtime_gpu.py --device {args.device} --eval-items {args.eval_items}` on "
        f"{torch.cuda.get_device_name(args.device)}, torch {torch.__version__}. "
        "The runtime uses SDPA on CUDA."
    )
    print(record("runtime_gpu", rows, notes))


if __name__ == "__main__":
    main()
