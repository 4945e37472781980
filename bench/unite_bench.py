"""UniTE ensemble speed: SmolLM2-135M-Instruct + Gemma-3-270m, greedy, 128 new tokens.

Compares, per generated token:
  * each member alone, decoding with its KV cache (fslm's ordinary decode loop);
  * the ensemble (fslm.runtime.ensemble): per-member caches, tail re-tokenization, agreement fast path;
  * a reference loop in the style of the paper's public code: the primary (SmolLM2) keeps a cache, the
    other member re-tokenizes the whole text and runs it without a cache at every step.

Usage: python bench/unite_bench.py [--tokens 128] [--prompts 3] [--batch 1]
"""

import argparse
import os
import time

import torch
from common import questions, record

from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.runtime.ensemble import EnsembleMember, EnsembleRequest, LoadedMember, token_text_for, union_average

MEMBERS = {"smol": ModelRef("smollm2-135m-instruct", "float32"), "gemma": ModelRef("gemma3-270m", "float32")}


def prompt_for(question: str) -> str:
    return f"Answer the question in a few sentences, then explain why.\nQuestion: {question}\nAnswer:"


def member_alone(
    runtime: Runtime, handle: str, prompts: list[str], tokens: int, batch: int
) -> tuple[float, int, int]:
    """Seconds, decoding steps (forward passes) and tokens generated over all rows.

    An empty stop list and min length are not options of the loop, so EOS can end a row early: count steps."""
    params = GenerationParams(max_new_tokens=tokens)
    started = time.perf_counter()
    steps = generated = 0
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        results = runtime.generate(
            [GenerationRequest(handle, p, chat_template=False, params=params) for p in chunk]
        )
        steps += max(r.completion_tokens for r in results)
        generated += sum(r.completion_tokens for r in results)
    return time.perf_counter() - started, steps, generated


def ensemble(runtime: Runtime, prompts: list[str], tokens: int, batch: int) -> tuple[float, int, int, int]:
    """Seconds, decoding steps, tokens chosen over all rows, and steps on which a row's members disagreed."""
    params = GenerationParams(max_new_tokens=tokens)
    members = (EnsembleMember("smol"), EnsembleMember("gemma"))
    started = time.perf_counter()
    steps = generated = disagreements = 0
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        results = runtime.generate_ensemble(
            [EnsembleRequest(members, p, chat_template=False, params=params) for p in chunk]
        )
        steps += max(r.steps for r in results)
        generated += sum(r.steps for r in results)
        disagreements += sum(r.disagreements for r in results)
    return time.perf_counter() - started, steps, generated, disagreements


def reference_loop(runtime: Runtime, prompt: str, tokens: int) -> tuple[float, int]:
    """Paper-style: the primary appends its token ids with a cache; the other re-encodes everything each
    step."""
    smol, gemma = runtime.base_for("smol"), runtime.base_for("gemma")
    members = [
        LoadedMember(smol, "__base__", token_text_for(smol), "smol"),
        LoadedMember(gemma, "__base__", token_text_for(gemma), "gemma"),
    ]
    started = time.perf_counter()
    primary_ids = smol.tokenizer(prompt)["input_ids"]
    completion = b""
    cache = None
    new = torch.tensor([primary_ids])
    steps = 0
    with torch.inference_mode():
        for steps in range(1, tokens + 1):
            out = smol.model(input_ids=new, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            text = prompt + completion.decode(errors="ignore")
            gemma_logits = gemma.model(input_ids=torch.tensor([gemma.tokenizer(text)["input_ids"]])).logits[
                0, -1
            ]
            logits = [out.logits[0, -1].float(), gemma_logits.float()]
            keys = [
                [m.text.keys[i] for i in row.topk(10).indices.tolist()] for m, row in zip(members, logits)
            ]
            union = list(dict.fromkeys(keys[0] + keys[1]))
            chosen = union[int(union_average(members, logits, union, (0.5, 0.5), 0.0).argmax())]
            if not isinstance(chosen, bytes):
                break
            completion += chosen
            new = torch.tensor(
                [
                    smol.tokenizer(chosen.decode(errors="ignore"), add_special_tokens=False)["input_ids"]
                    or [smol.pad_id]
                ]
            )
    return time.perf_counter() - started, steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reference-prompts", type=int, default=1)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    prompts = [prompt_for(q) for q in questions(args.prompts)]
    with Runtime(MEMBERS) as runtime:
        for handle in MEMBERS:  # load, convert and index the vocabularies before timing
            member_alone(runtime, handle, prompts[:1], 2, 1)
            token_text_for(runtime.base_for(handle))
        rows = []
        alone = {}

        def row(what: str, seconds: float, steps: int, generated: int) -> None:
            rows.append(
                {
                    "what": what,
                    "steps": steps,
                    "generated_tokens": generated,
                    "ms_per_step": round(1000 * seconds / steps, 1),
                    "ms_per_generated_token": round(1000 * seconds / generated, 1),
                }
            )

        for handle in MEMBERS:
            seconds, steps, generated = member_alone(runtime, handle, prompts, args.tokens, args.batch)
            alone[handle] = seconds / steps
            row(f"{handle} alone (cached decode)", seconds, steps, generated)
        seconds, steps, generated, disagreements = ensemble(runtime, prompts, args.tokens, args.batch)
        per_step, per_token = seconds / steps, seconds / generated
        members_sum = sum(alone.values())
        rows.append(
            {
                "what": "sum of members alone",
                "steps": "",
                "generated_tokens": "",
                "ms_per_step": round(1000 * members_sum, 1),
                "ms_per_generated_token": "",
            }
        )
        row(f"UniTE ensemble (fslm), batch {args.batch}", seconds, steps, generated)
        ref_seconds = ref_steps = 0.0
        for prompt in prompts[: args.reference_prompts]:
            s, n = reference_loop(runtime, prompt, args.tokens)
            ref_seconds, ref_steps = ref_seconds + s, ref_steps + n
        ref_per_token = ref_seconds / ref_steps
        row(
            "reference loop (re-tokenize + no cache for gemma), one prompt at a time",
            ref_seconds,
            int(ref_steps),
            int(ref_steps),
        )
    load_after = os.getloadavg()[0]
    notes = (
        f"{args.prompts} TriviaQA prompts, greedy, up to {args.tokens} new tokens, batch {args.batch}, "
        f"float32. 1-minute load average {load:.2f} before, {load_after:.2f} after (2 cores, shared "
        "machine). A step is one forward pass over the batch; its rows generate one token each. "
        f"Ensemble step / sum of members' steps = **{per_step / members_sum:.2f}×** (target ≤ 1.3×); "
        f"reference / ensemble per generated token = **{ref_per_token / per_token:.1f}×** (target ≥ 3×; the "
        "reference loop has no batched form, so it runs one prompt at a time). "
        f"Members disagreed on their top-1 token at {disagreements} of {generated} generated tokens. "
        f"Command: `python bench/unite_bench.py --tokens {args.tokens} --prompts {args.prompts} --batch "
        f"{args.batch}`."
    )
    path = record(f"unite_speed_batch{args.batch}", rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
