"""Where a choice stage's scoring time goes, on the requests of bench/choices_vs_lmeval.py (SmolLM2 float32,
`Question: {question}\\nAnswer:` then ` {option}`, batches of 32).

- Tokens computed per item: fslm computes each context once and each option's tokens after the first (the
  first is scored from the context's last logits); lm-eval-harness computes context + option (less its last
  token) once per option. Their ratio bounds what sharing the context can buy at equal cost per token.
- Every forward pass the runtime makes (`LoadedBase.forward`), timed: the share of the wall time spent in
  them, their shapes, and a least-squares fit of pass time = per-pass cost + per-token cost × rows × width
  (padding included).

Usage: python bench/choices_profile.py [--sets piqa,arc] [--n 150]
Writes bench/results/choices_profile.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from choices_vs_lmeval import MODEL, fslm_logprobs, items
from common import record
from transformers import AutoTokenizer

from fslm.runtime import loaded
from fslm.runtime.resolve import prepare


def token_counts(tokenizer, data: list[dict]) -> tuple[float, float]:
    """Tokens computed per item by fslm and by lm-eval, on average."""
    ours = theirs = 0
    for item in data:
        context = len(tokenizer(f"Question: {item['question']}\nAnswer:")["input_ids"])
        options = [len(tokenizer(f" {option}")["input_ids"]) for option in item["choices"]]
        ours += context + sum(length - 1 for length in options)
        theirs += sum(context + length - 1 for length in options)
    return ours / len(data), theirs / len(data)


def timed_passes(data: list[dict]) -> tuple[list[tuple[int, int, float]], float]:
    """(rows, width, seconds) of every forward pass while scoring `data`, and the wall seconds."""
    passes: list[tuple[int, int, float]] = []
    forward = loaded.LoadedBase.forward

    def timed(self, adapter_names, **model_kwargs):
        started = time.perf_counter()
        output = forward(self, adapter_names, **model_kwargs)
        rows, width = model_kwargs["input_ids"].shape
        passes.append((int(rows), int(width), time.perf_counter() - started))
        return output

    loaded.LoadedBase.forward = timed
    try:
        _, seconds = fslm_logprobs(data)
    finally:
        loaded.LoadedBase.forward = forward
    return passes[1:], seconds  # the first pass is fslm_logprobs's warm-up item


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="piqa,arc")
    parser.add_argument("--n", type=int, default=150)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(str(prepare(MODEL)))
    rows = []
    for name in args.sets.split(","):
        data = items(name, args.n)
        ours, theirs = token_counts(tokenizer, data)
        passes, seconds = timed_passes(data)
        sizes = np.array([[1.0, rows * width] for rows, width, _ in passes])
        times = np.array([elapsed for _, _, elapsed in passes])
        per_pass, per_token = np.linalg.lstsq(sizes, times, rcond=None)[0]
        rows.append(
            {
                "set": name,
                "items": len(data),
                "items/s": round(len(data) / seconds, 2),
                "tokens/item fslm": round(ours, 1),
                "tokens/item lm-eval": round(theirs, 1),
                "lm-eval / fslm tokens": round(theirs / ours, 2),
                "forward passes": len(passes),
                "rows per pass (mean)": round(float(np.mean([rows for rows, _, _ in passes])), 1),
                "padded tokens / item": round(float(sizes[:, 1].sum()) / len(data), 1),
                "share of wall in forward": round(float(times.sum()) / seconds, 3),
                "fit: ms per pass": round(1000 * per_pass, 1),
                "fit: ms per token": round(1000 * per_token, 2),
            }
        )
    notes = (__doc__ or "").split("\n\nUsage")[
        0
    ] + f"\n\nCommand: `python bench/choices_profile.py --sets {args.sets} --n {args.n}`"
    print(record("choices_profile", rows, notes).read_text())


if __name__ == "__main__":
    main()
