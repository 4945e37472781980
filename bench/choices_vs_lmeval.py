"""fslm's choice stage against lm-eval-harness: per-option log-likelihoods of the same requests.

On the 300 PIQA dev items and the first 300 ARC-Challenge items (its train split, the only one in
../shared/data), both in lm-eval's own format (prompt "Question: {question}\\nAnswer:", each option
continued as " {option}"), SmolLM2-135M-Instruct in float32 on the CPU, no chat template:

- fslm: a pipeline of one `choices` stage (normalize: none) run over the items as structured inputs with
  `Pipeline.batch`; each option's summed log-probability is read from the stage's record.
- lm-eval: `HFLM(pretrained=<fslm's converted SmolLM2 directory>, dtype=float32, device=cpu)
  .loglikelihood(...)` on the same (context, continuation) pairs; lm-eval's acc and acc_norm as its
  multiple-choice tasks compute them (argmax of the sums; of the sums divided by each option's length in
  characters). fslm's acc_norm divides by UTF-8 bytes, which differ on non-ASCII options only.

Reported per set: argmax agreement, acc and acc_norm of both, the largest |Δ log-prob| over all options, and
items/s for both (model loading excluded; both at 32 options or requests per forward pass).

lm-eval is the `bench` extra, pinned in constraints.txt. It was installed into the project's venv with
`.venv/bin/pip install -c constraints.txt lm-eval==0.4.13`, which adds lm-eval's own dependencies (evaluate,
scikit-learn, sacrebleu, ...) and leaves torch, transformers, accelerate and peft as they are (lm-eval lists
them only under its `hf` extra, which is not installed).

Usage: python bench/choices_vs_lmeval.py [--n 300] [--sets piqa,arc]
"""

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED_DATA, read_jsonl, record

from fslm.pipeline import load_pipeline
from fslm.runtime.resolve import prepare

MODEL = "smollm2-135m-instruct"
BATCH = 32
SETS = {"piqa": ("piqa/dev.jsonl", "A B"), "arc": ("arc-challenge/train.jsonl", "A B C D")}
PIPELINE = f"""name: choices-vs-lmeval
models:
  smol: {{source: {MODEL}, dtype: float32}}
inputs: [question, choices]
stages:
  answer:
    model: smol
    prompt: "Question: {{{{ question }}}}\\nAnswer:"
    choices: "{{{{ choices }}}}"
    continuation: " {{{{ choice }}}}"
    normalize: none
"""


def items(name: str, n: int) -> list[dict]:
    path, letters = SHARED_DATA / SETS[name][0], SETS[name][1].split()
    rows = read_jsonl(path)[:n]
    return [
        {
            "question": row["question"],
            "choices": [row[letter] for letter in letters],
            "gold": letters.index(row["answer"]),
        }
        for row in rows
    ]


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda index: (values[index], -index))


def fslm_logprobs(data: list[dict]) -> tuple[list[list[float]], float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "choices.yaml"
        path.write_text(PIPELINE)
        pipeline = load_pipeline(path, store=str(Path(folder) / "runs.sqlite"), max_batch_size=BATCH)
        try:
            pipeline.batch([{"question": "warm-up", "choices": ["yes", "no"]}])
            started = time.perf_counter()
            results = pipeline.batch(
                [{"question": item["question"], "choices": item["choices"]} for item in data]
            )
            seconds = time.perf_counter() - started
        finally:
            pipeline.close()
    records = [result.messages[-1]["choices"] for result in results]
    for item, scored in zip(data, records, strict=True):
        if scored["options"] != item["choices"]:
            sys.exit(f"options were merged (duplicates?) for {item['question']!r}; compare needs them all")
    return [scored["scorers"][0]["logprobs"] for scored in records], seconds


def lmeval_logprobs(data: list[dict]) -> tuple[list[list[float]], float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model = HFLM(pretrained=str(prepare(MODEL)), dtype="float32", device="cpu", batch_size=BATCH)
    requests = [
        Instance("loglikelihood", {}, (f"Question: {item['question']}\nAnswer:", f" {option}"), index)
        for item in data
        for index, option in enumerate(item["choices"])
    ]
    model.loglikelihood([Instance("loglikelihood", {}, ("Question: warm-up\nAnswer:", " yes"), 0)])
    started = time.perf_counter()
    results = model.loglikelihood(requests)
    seconds = time.perf_counter() - started
    sums, position = [], 0
    for item in data:
        sums.append([logprob for logprob, _ in results[position : position + len(item["choices"])]])
        position += len(item["choices"])
    return sums, seconds


def compare(name: str, data: list[dict]) -> dict:
    ours, our_seconds = fslm_logprobs(data)
    theirs, their_seconds = lmeval_logprobs(data)
    golds = [item["gold"] for item in data]

    def accuracy(sums: list[list[float]], lengths: list[list[int]] | None) -> float:
        picks = [
            argmax(row if size is None else [value / length for value, length in zip(row, size, strict=True)])
            for row, size in zip(sums, lengths or [None] * len(sums), strict=True)
        ]
        return 100 * sum(pick == gold for pick, gold in zip(picks, golds, strict=True)) / len(golds)

    our_bytes = [[len(option.encode()) for option in item["choices"]] for item in data]
    their_chars = [[len(option) for option in item["choices"]] for item in data]
    agree = sum(argmax(a) == argmax(b) for a, b in zip(ours, theirs, strict=True))
    delta = max(
        abs(a - b) for row, other in zip(ours, theirs, strict=True) for a, b in zip(row, other, strict=True)
    )
    return {
        "set": name,
        "items": len(data),
        "argmax agreement %": round(100 * agree / len(data), 2),
        "fslm acc": round(accuracy(ours, None), 2),
        "lm-eval acc": round(accuracy(theirs, None), 2),
        "fslm acc_norm": round(accuracy(ours, our_bytes), 2),
        "lm-eval acc_norm": round(accuracy(theirs, their_chars), 2),
        "max abs Δ logprob": f"{delta:.2e}",
        "fslm items/s": round(len(data) / our_seconds, 2),
        "lm-eval items/s": round(len(data) / their_seconds, 2),
        "non-ASCII items": sum(any(not option.isascii() for option in item["choices"]) for item in data),
        "finite": all(math.isfinite(value) for row in ours + theirs for value in row),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--sets", default="piqa,arc")
    args = parser.parse_args()
    rows = []
    for name in args.sets.split(","):
        rows.append(compare(name, items(name, args.n)))
        print(json.dumps(rows[-1]), flush=True)
    notes = (
        "SmolLM2-135M-Instruct, float32, CPU. Same requests on both sides: context `Question: {question}"
        "\\nAnswer:`, continuation ` {option}`. fslm: one `choices` stage (normalize: none) over structured "
        "inputs; lm-eval 0.4.13: `HFLM.loglikelihood`. acc: argmax of summed log-probs; acc_norm: per byte "
        "(fslm) and per character (lm-eval's multiple-choice tasks), which differ only on non-ASCII options. "
        "ARC-Challenge items are the first 300 of its train split (the only split in ../shared/data). "
        "Items/s exclude model loading; 32 options (fslm) or requests (lm-eval) per forward pass."
    )
    print(record("choices_vs_lmeval", rows, notes))


if __name__ == "__main__":
    main()
