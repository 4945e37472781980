"""Batch-1 greedy decode speed of SmolLM2-135M-Instruct (float32) against the memory-bandwidth bound.

Decoding one token at batch 1 reads every weight once, so a token cannot take less than the bytes of the
weights over the machine's memory bandwidth. This bench measures both on the same torch threads:

- Decode tokens/s: each prompt is generated through `fslm.runtime.Runtime` (prefix reuse off, so that no
  run reuses another's prompt) twice, with 1 and with `--new-tokens` greedy tokens. The difference of the
  two `Generation.seconds` is the time of the extra decode steps, without the prefill; tokens/s is the sum
  of the extra tokens over the sum of those differences. The 1-token runs give the prefill's time too.
- Bandwidth: a `--gib` GiB float32 tensor, far larger than any CPU cache, is read whole (`torch.sum`) and
  copied whole (`Tensor.copy_`, counting the bytes read and written); the best of `--repeats` timings each.
- Bound: the higher of the two bandwidths / bytes of weights read per token (an upper bound on tokens/s
  takes the most the memory was seen to deliver). The weights are the model's parameters, each counted
  once, at 4 bytes: SmolLM2 ties its embedding to its LM head, and the one matrix counts once (the
  head reads all of it; the embedding lookup reads one row of it). The KV cache read per step is left out
  and stated (tens of KB per position, against about 540 MB of weights).

Usage: python bench/runtime_bandwidth.py [--prompts 5] [--new-tokens 64] [--gib 2] [--repeats 5] [--threads 2]
Writes bench/results/runtime_bandwidth.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record, timed_runs

from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime

# Prompts that ask for long answers, so that greedy decoding rarely ends before --new-tokens.
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe the water cycle to a ten-year-old, step by step.",
    "List ten things to pack for a week of hiking in the mountains, and say why for each.",
    "Write a letter to a friend describing your favourite city and what to see there.",
    "Explain how a computer stores numbers, from bits to floating point.",
    "Tell the history of the printing press and how it changed Europe.",
    "Describe how to bake bread at home, from flour to the first slice.",
]
GIB = 2**30


def bandwidth(gib: float, repeats: int) -> tuple[float, float]:
    """(read, copy) bandwidth in bytes per second over a `gib` GiB float32 tensor."""
    size = int(gib * GIB) // 4
    source = torch.rand(size)
    target = torch.empty_like(source)
    nbytes = source.numel() * source.element_size()
    read = nbytes / min(timed_runs(lambda: source.sum(), repeats))
    copy = 2 * nbytes / min(timed_runs(lambda: target.copy_(source), repeats))
    return read, copy


def decode(prompts: list[str], new_tokens: int) -> dict:
    """Batch-1 greedy generations of each prompt with 1 and with `new_tokens` tokens; decode figures."""
    runtime = Runtime({"smol": ModelRef("smollm2-135m-instruct", dtype="float32")}, reuse_prefixes=False)
    base = runtime.base_for("smol")

    def generate(prompt: str, tokens: int):
        request = GenerationRequest("smol", prompt, params=GenerationParams(max_new_tokens=tokens))
        return runtime.generate([request])[0]

    generate(PROMPTS[-1], 8)  # warm-up: first-call allocations and kernel choices
    extra_tokens = extra_seconds = first_seconds = 0.0
    generated = positions = 0
    for prompt in prompts:
        first = generate(prompt, 1)
        full = generate(prompt, new_tokens)
        extra_tokens += full.completion_tokens - first.completion_tokens
        extra_seconds += full.seconds - first.seconds
        first_seconds += first.seconds
        generated += full.completion_tokens
        positions += full.prompt_tokens + full.completion_tokens
    config = base.model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_bytes_per_position = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4
    runtime.close()
    return {
        "parameters": sum(p.numel() for p in base.model.parameters()),
        "tied": bool(getattr(config, "tie_word_embeddings", False)),
        "tokens_per_second": extra_tokens / extra_seconds,
        "generated": generated,
        "decode_tokens": int(extra_tokens),
        "prefill_and_first_token_ms": 1000 * first_seconds / len(prompts),
        "kv_bytes_per_position": kv_bytes_per_position,
        "mean_positions": positions / len(prompts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=5, help=f"prompts (5, at most {len(PROMPTS) - 1})")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens per prompt (64)")
    parser.add_argument("--gib", type=float, default=2.0, help="size of the tensor read and copied (2)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per bandwidth test, best kept (5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    args = parser.parse_args()
    if not 1 <= args.prompts < len(PROMPTS) or args.new_tokens < 2 or args.gib <= 0 or args.repeats < 1:
        sys.exit(f"need 1 <= --prompts <= {len(PROMPTS) - 1}, --new-tokens >= 2, --gib > 0, --repeats >= 1")
    torch.set_num_threads(args.threads)

    read, copy = bandwidth(args.gib, args.repeats)
    measured = decode(PROMPTS[: args.prompts], args.new_tokens)
    weight_bytes = measured["parameters"] * 4
    bound = max(read, copy) / weight_bytes
    kv_share = measured["kv_bytes_per_position"] * measured["mean_positions"] / weight_bytes
    rows = [
        {
            "decode tokens/s": round(measured["tokens_per_second"], 2),
            "bound tokens/s": round(bound, 2),
            "ratio": round(measured["tokens_per_second"] / bound, 3),
            "read GB/s": round(read / 1e9, 2),
            "copy GB/s": round(copy / 1e9, 2),
            "weights MB": round(weight_bytes / 1e6, 1),
            "parameters": measured["parameters"],
            "decode tokens timed": measured["decode_tokens"],
            "prefill + first token ms": round(measured["prefill_and_first_token_ms"], 1),
        }
    ]
    for key, value in rows[0].items():
        print(f"{key}: {value}")
    head = "tied, counted once" if measured["tied"] else "untied, both counted"
    command = (
        f"python bench/runtime_bandwidth.py --prompts {args.prompts} --new-tokens {args.new_tokens} "
        f"--gib {args.gib:g} --repeats {args.repeats} --threads {args.threads}"
    )
    kv_kb = measured["kv_bytes_per_position"] / 1e3
    notes = (
        f"Command: `{command}`. SmolLM2-135M-Instruct, float32, batch 1, greedy, fslm's runtime with prefix "
        "reuse off.\n\n"
        f"Decode tokens/s: each of {args.prompts} prompts generated with 1 and with {args.new_tokens} "
        f"tokens; the extra tokens ({measured['decode_tokens']} in all, {measured['generated']} generated) "
        "over the extra seconds, so the prefill is not counted. Bandwidth: best of "
        f"{args.repeats} timings of reading (`torch.sum`) and of copying (`copy_`, bytes read plus written) "
        f"a {args.gib:g} GiB float32 tensor on the same {args.threads} threads. Bound: the higher bandwidth "
        f"over the bytes of weights read per token, {measured['parameters']:,} parameters x 4 bytes "
        f"(embedding and LM head {head}). The KV cache read per step is left out: {kv_kb:.1f} KB per "
        f"position, {kv_share:.1%} of the weights at the mean {measured['mean_positions']:.0f} positions. "
        "The ratio is a figure to track, not a target."
    )
    print(f"wrote {record('runtime_bandwidth', rows, notes)}")


if __name__ == "__main__":
    main()
