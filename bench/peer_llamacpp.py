"""fslm side by side with llama.cpp (llama-cpp-python) on the builtin GGUF files: greedy decode at batch 1 and
with 8, 32 and 64 sequences at once.

Both read the same GGUF file (SmolLM2-135M-Instruct Q4_1, Gemma-3-270m Q4_K_M). fslm de-quantizes it to
--dtype and runs transformers through its runtime; llama.cpp computes on the 4-bit weights. Both get the
same prompt token ids (fslm's rendering of each prompt, chat template included, tokenized by fslm's
tokenizer) and decode greedily for at most --new-tokens tokens, stopping at an end-of-sequence token.

- batch 1: the prompts one at a time; tokens/s is generated tokens over wall seconds, prefill included.
- concurrent: for each count of --concurrent, that many prompts at once. fslm: one `Runtime.generate`
  call (iteration-level batching, prefix reuse off). llama.cpp: one context holding that many sequences,
  each step one `llama_decode` of a batch with every unfinished sequence's next token (the prompts are
  decoded together first). Aggregate tokens/s is all generated tokens over the wall seconds of the call.

Greedy texts are compared: the two compute with different weights (float vs 4-bit dot products), so they
may part after some tokens; the result file gives the mean number of leading tokens both agree on (both
texts decoded and stripped as fslm returns text, then tokenized by fslm's tokenizer).

Needs the bench extra: pip install -c constraints.txt "llama-cpp-python==0.3.36" (builds from source here).
Usage: python bench/peer_llamacpp.py [--models smollm2-135m-instruct,gemma3-270m] [--prompts 4]
       [--new-tokens 64] [--concurrent 8,32,64] [--threads 2] [--dtype float32]
Writes bench/results/peer_llamacpp.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record
from runtime_bandwidth import PROMPTS

from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.runtime.builtin import builtin_gguf_path
from fslm.runtime.prompt import encode_prompt


def prompts_for(count: int) -> list[str]:
    """`count` distinct prompts: the long-answer prompts, numbered when they have to repeat."""
    return [
        PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" (version {i // len(PROMPTS) + 1})")
        for i in range(count)
    ]


class FslmSide:
    def __init__(self, alias: str, dtype: str) -> None:
        self.runtime = Runtime({"m": ModelRef(alias, dtype=dtype)}, reuse_prefixes=False, max_batch_size=64)
        self.base = self.runtime.base_for("m")

    def prompt_ids(self, prompt: str) -> list[int]:
        return encode_prompt(self.base.tokenizer, GenerationRequest("m", prompt))[1]

    def completion_ids(self, text: str) -> list[int]:
        return self.base.tokenizer(text, add_special_tokens=False)["input_ids"]

    def text_of(self, ids: list[int]) -> str:
        """Token ids as fslm returns a completion's text: decoded without special tokens, stripped."""
        return self.base.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, prompts: list[str], new_tokens: int) -> tuple[list[str], int, float]:
        """Texts, generated tokens, wall seconds of one call serving all `prompts` together."""
        params = GenerationParams(max_new_tokens=new_tokens)
        started = time.perf_counter()
        done = self.runtime.generate([GenerationRequest("m", prompt, params=params) for prompt in prompts])
        seconds = time.perf_counter() - started
        return [g.text for g in done], sum(g.completion_tokens for g in done), seconds

    def close(self) -> None:
        self.runtime.close()


class LlamaSide:
    def __init__(self, gguf: Path, threads: int, sequences: int, context: int) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaContext

        # The model through the high-level class; a context of our own, as its constructor has no way to
        # ask for several sequences: `sequences` sequences, each with its own part of the KV cache
        # (`context` tokens each), as llama.cpp's server serves parallel requests.
        self.llama = llama_cpp.Llama(model_path=str(gguf), n_ctx=256, n_threads=threads, verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = context * sequences
        params.n_ubatch = 512
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False
        self.context = LlamaContext(model=self.llama._model, params=params, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llama._model.model)
        self.vocabulary = self.llama.n_vocab()

    def is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def generate(self, prompts: list[list[int]], new_tokens: int) -> tuple[list[list[int]], float]:
        """Greedy completions (token ids) of all `prompts` as parallel sequences of one context, and the
        wall seconds."""
        import llama_cpp

        context = self.context.ctx
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(context), True)
        total = sum(map(len, prompts)) + len(prompts)
        batch = llama_cpp.llama_batch_init(max(total, 1), 0, len(prompts))
        outputs: list[list[int]] = [[] for _ in prompts]
        started = time.perf_counter()
        try:
            entries = [
                (sequence, position, token, position == len(ids) - 1)
                for sequence, ids in enumerate(prompts)
                for position, token in enumerate(ids)
            ]
            positions = [len(ids) for ids in prompts]
            while entries:
                rows = self._decode(batch, entries)
                entries = []
                for sequence, row in rows.items():
                    token = int(np.argmax(row))
                    if self.is_end(token):
                        continue
                    outputs[sequence].append(token)
                    if len(outputs[sequence]) < new_tokens:
                        entries.append((sequence, positions[sequence], token, True))
                        positions[sequence] += 1
        finally:
            llama_cpp.llama_batch_free(batch)
        return outputs, time.perf_counter() - started

    def _decode(self, batch, entries: list[tuple[int, int, int, bool]]) -> dict[int, np.ndarray]:
        """One llama_decode of `entries` (sequence, position, token, wants logits); the logits of each
        sequence's entry that wants them."""
        import llama_cpp

        context = self.context.ctx
        batch.n_tokens = len(entries)
        for index, (sequence, position, token, logits) in enumerate(entries):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = sequence
            batch.logits[index] = logits
        if llama_cpp.llama_decode(context, batch) != 0:
            raise RuntimeError("llama_decode failed (context too small?)")
        rows = {}
        for index, (sequence, _, _, logits) in enumerate(entries):
            if logits:
                pointer = llama_cpp.llama_get_logits_ith(context, index)
                rows[sequence] = np.ctypeslib.as_array(pointer, shape=(self.vocabulary,))
        return rows


def agreeing_prefix(first: list[int], second: list[int]) -> int:
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


def compare(alias: str, args: argparse.Namespace) -> list[dict]:
    fslm = FslmSide(alias, args.dtype)
    most = max(args.concurrent)
    many = prompts_for(max(most, args.prompts))
    ids = [fslm.prompt_ids(prompt) for prompt in many]
    context = max(map(len, ids)) + args.new_tokens + 1  # per sequence
    llama = LlamaSide(builtin_gguf_path(alias), args.threads, most, context)
    fslm.generate(many[:1], 8)  # warm-up: first-call allocations and kernel choices, both sides
    llama.generate(ids[:1], 8)
    rows = []
    for count in [1, *args.concurrent]:
        fslm_tokens = llama_tokens = 0
        fslm_seconds = llama_seconds = 0.0
        agreement = []
        groups = [[i] for i in range(args.prompts)] if count == 1 else [list(range(count))]
        for group in groups:
            texts, tokens, seconds = fslm.generate([many[i] for i in group], args.new_tokens)
            fslm_tokens, fslm_seconds = fslm_tokens + tokens, fslm_seconds + seconds
            completions, seconds = llama.generate([ids[i] for i in group], args.new_tokens)
            llama_tokens += sum(map(len, completions))
            llama_seconds += seconds
            agreement += [
                agreeing_prefix(fslm.completion_ids(text), fslm.completion_ids(fslm.text_of(completion)))
                for text, completion in zip(texts, completions, strict=True)
            ]
        fslm_rate, llama_rate = fslm_tokens / fslm_seconds, llama_tokens / llama_seconds
        rows.append(
            {
                "model": alias,
                "sequences at once": count,
                "fslm tokens/s": round(fslm_rate, 1),
                "llama.cpp tokens/s": round(llama_rate, 1),
                "fslm / llama.cpp": round(fslm_rate / llama_rate, 2),
                "fslm tokens": fslm_tokens,
                "llama.cpp tokens": llama_tokens,
                "mean agreeing leading tokens": round(sum(agreement) / len(agreement), 1),
            }
        )
        print(rows[-1], flush=True)
    fslm.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
    parser.add_argument("--prompts", type=int, default=4, help="prompts at batch 1 (4)")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens at most per prompt (64)")
    parser.add_argument(
        "--concurrent",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[8, 32, 64],
        help="counts of sequences at once, comma-separated (8,32,64)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and llama.cpp threads (2)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="fslm's dtype")
    args = parser.parse_args()
    if args.prompts < 1 or args.new_tokens < 1 or min(args.concurrent) < 2:
        sys.exit("need --prompts >= 1, --new-tokens >= 1 and --concurrent counts >= 2")
    try:
        import llama_cpp
    except ImportError:
        sys.exit(
            'llama-cpp-python is not installed: pip install -c constraints.txt "llama-cpp-python==0.3.36"'
        )
    torch.set_num_threads(args.threads)
    rows = [row for alias in args.models.split(",") for row in compare(alias, args)]
    command = (
        f"python bench/peer_llamacpp.py --models {args.models} --prompts {args.prompts} "
        f"--new-tokens {args.new_tokens} --concurrent {','.join(map(str, args.concurrent))} "
        f"--threads {args.threads} "
        f"--dtype {args.dtype}"
    )
    notes = (
        f"Command: `{command}`; llama-cpp-python {llama_cpp.__version__}. fslm de-quantizes each GGUF file "
        f"to {args.dtype}; llama.cpp computes on its 4-bit weights, so it reads about a sixth of the bytes "
        "per token (SmolLM2: Q4_1, about 0.6 bytes per weight, against 4). Tokens/s count generated tokens "
        "over wall seconds, prefill included; both sides get the same prompt token ids and stop at "
        "end-of-sequence or the token cap."
    )
    print(f"wrote {record('peer_llamacpp', rows, notes)}")


if __name__ == "__main__":
    main()
