"""Choice stages' quality: SmolLM2-135M-Instruct, Gemma-3-270m and a UniTE choice stage over both.

Each set runs one pipeline: a `choices` stage whose `ensemble` has both models as members, equal weights,
normalize: none, no chat template, float32 on the CPU. Its record holds each member's per-option
log-probabilities, so one run gives all three: a member's pick is the argmax of its own scores, the
ensemble's the argmax of the members' softmax probabilities over the options, averaged (what the stage picks).
acc uses the summed log-probabilities, acc_norm the sums per UTF-8 byte of the option (lm-eval-harness's
acc and acc_norm), both recomputed with `fslm.nodes.choices.scoring.pick` as `fslm eval` does. 95%
intervals are Wilson score intervals; the ensemble against its better member (by acc) is compared item by
item, with the exact McNemar p-value (`fslm.eval.stats`).

- PIQA: the 300 dev items; "Question: {goal}\\nAnswer:", each option continued as " {option}".
- ARC-Challenge: the first 300 items of its train split (the only split in ../shared/data), same format.
- MMLU: 300 val items evenly spaced through the file (many subjects), 5-shot from the dev items of the same
  subject, lm-eval's `mmlu` format: options listed A-D in the prompt, the continuations " A" … " D" (so
  acc_norm is acc: every option is one byte).

Speed: on PIQA items, items/s of a choice stage with one model (both options scored) against a generating
stage that writes a one-letter answer (max_new_tokens 1, greedy) to the same question with the options
listed, per model, on the first --speed-n items (models loaded and warmed first).

Usage: python bench/choices_quality.py [--n 300] [--sets piqa,arc,mmlu,speed] [--batch 32]
Each quality set replaces its own rows in bench/results/choices_quality.md as soon as it ends and keeps
the other sets' rows; the speed table goes to bench/results/choices_speed.md.
"""

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import RESULTS, SHARED_DATA, read_jsonl, record

from fslm.eval.stats import interval95, paired
from fslm.nodes.choices.scoring import pick
from fslm.pipeline import load_pipeline

MODELS = {"SmolLM2-135M-Instruct": "smollm2-135m-instruct", "Gemma-3-270m": "gemma3-270m"}
HANDLES = {"smol": "smollm2-135m-instruct", "gemma": "gemma3-270m"}
LETTERS = "ABCD"
MODELS_YAML = "models:\n" + "".join(
    f"  {handle}: {{source: {source}, dtype: float32}}\n" for handle, source in HANDLES.items()
)
ENSEMBLE = (
    MODELS_YAML
    + """inputs: [prompt_text, choices]
stages:
  answer:
    ensemble: {members: [{model: smol}, {model: gemma}]}
    prompt: "{{ prompt_text }}"
    choices: "{{ choices }}"
    normalize: none
"""
)
SINGLE_CHOICE = (
    MODELS_YAML
    + """inputs: [prompt_text, choices]
stages:
  answer: {model: HANDLE, prompt: "{{ prompt_text }}", choices: "{{ choices }}", normalize: none}
"""
)
LETTER = (
    MODELS_YAML
    + """inputs: [prompt_text]
stages:
  answer:
    model: HANDLE
    prompt: "{{ prompt_text }}"
    chat_template: false
    generation: {max_new_tokens: 1}
"""
)


def load_average() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def letters_of(row: dict) -> str:
    return "".join(letter for letter in LETTERS if letter in row)


def listed(row: dict) -> str:
    options = "\n".join(f"{letter}. {row[letter]}" for letter in letters_of(row))
    return f"{row['question'].strip()}\n{options}\nAnswer:"


def option_items(file: str, n: int) -> list[dict]:
    """PIQA and ARC in lm-eval's format: the options themselves are continued."""
    return [
        {
            "prompt_text": f"Question: {row['question']}\nAnswer:",
            "choices": [row[letter] for letter in letters_of(row)],
            "gold": letters_of(row).index(row["answer"]),
        }
        for row in read_jsonl(SHARED_DATA / file)[:n]
    ]


def mmlu_items(n: int) -> list[dict]:
    shots = defaultdict(list)
    for row in read_jsonl(SHARED_DATA / "mmlu" / "dev.jsonl"):
        shots[row["domain"]].append(row)
    rows = read_jsonl(SHARED_DATA / "mmlu" / "val.jsonl")
    rows = rows[:: max(1, len(rows) // n)][:n]
    items = []
    for row in rows:
        domain = row["domain"]
        examples = "".join(f"{listed(shot)} {shot['answer']}\n\n" for shot in shots[domain][:5])
        header = f"The following are multiple choice questions (with answers) about {domain}.\n\n"
        items.append(
            {
                "prompt_text": header + examples + listed(row),
                "choices": list(LETTERS),
                "gold": LETTERS.index(row["answer"]),
            }
        )
    return items


def run_pipeline(text: str, inputs: list[dict], batch: int) -> tuple[list, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text)
        pipeline = load_pipeline(path, store=str(Path(folder) / "runs.sqlite"), max_batch_size=batch)
        try:
            pipeline.batch(inputs[:2])  # load the models and warm up
            started = time.perf_counter()
            results = pipeline.batch(inputs)
            return results, time.perf_counter() - started
        finally:
            pipeline.close()


def quality(title: str, items: list[dict], batch: int, note: str) -> list[dict]:
    inputs = [{"prompt_text": item["prompt_text"], "choices": item["choices"]} for item in items]
    results, seconds = run_pipeline(ENSEMBLE, inputs, batch)
    records = [result.messages[-1]["choices"] for result in results]
    golds = [item["gold"] for item in items]
    correct: dict[str, dict[str, list[float]]] = {}
    for metric, how in (("acc", "none"), ("acc_norm", "byte")):
        for index, model in enumerate(MODELS):
            member = [{**scored, "scorers": [scored["scorers"][index]]} for scored in records]
            correct.setdefault(model, {})[metric] = [
                float(pick(scored, how, [1.0]) == gold) for scored, gold in zip(member, golds, strict=True)
            ]
        correct.setdefault("UniTE choice stage", {})[metric] = [
            float(pick(scored, how, [1.0, 1.0]) == gold) for scored, gold in zip(records, golds, strict=True)
        ]
    best = max(MODELS, key=lambda model: sum(correct[model]["acc"]))
    rows = []
    for model, scores in correct.items():
        row = {"set": title, "model": model, "n": len(items)}
        for metric, values in scores.items():
            bounds = interval95(values)
            row[metric] = (
                f"{100 * sum(values) / len(values):.1f} [{100 * bounds.low:.1f}, {100 * bounds.high:.1f}]"
            )
        for metric in ("acc", "acc_norm"):
            comparison = paired(scores[metric], correct[best][metric])
            row[f"{metric}: wins/losses vs best member (p)"] = (
                f"{comparison.wins}/{comparison.losses} (p={comparison.p_value:.3f})"
                if model not in MODELS
                else ""
            )
        row["note"] = f"{note}; load {load_average()}"
        rows.append(row)
    rows[-1]["note"] += f"; best member: {best}; {len(items) / seconds:.2f} items/s for the ensemble stage"
    return rows


def speed(n: int, batch: int) -> list[dict]:
    items = option_items("piqa/dev.jsonl", n)
    rows = read_jsonl(SHARED_DATA / "piqa" / "dev.jsonl")[:n]
    letters = [{"prompt_text": f"Question: {listed(row)}"} for row in rows]
    inputs = [{"prompt_text": item["prompt_text"], "choices": item["choices"]} for item in items]
    table = []
    for model, handle in zip(MODELS, HANDLES, strict=True):
        _, choice_seconds = run_pipeline(SINGLE_CHOICE.replace("HANDLE", handle), inputs, batch)
        _, letter_seconds = run_pipeline(LETTER.replace("HANDLE", handle), letters, batch)
        table.append(
            {
                "set": f"PIQA speed, first {n} items",
                "model": model,
                "n": n,
                "choice stage items/s (2 options scored)": round(n / choice_seconds, 2),
                "one-letter generation items/s": round(n / letter_seconds, 2),
            }
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--speed-n", type=int, default=40)
    parser.add_argument("--sets", default="piqa,arc,mmlu,speed")
    parser.add_argument("--batch", type=int, default=32, help="most options in one forward pass")
    args = parser.parse_args()
    sets = {
        "piqa": lambda: quality("PIQA (dev)", option_items("piqa/dev.jsonl", args.n), args.batch, "0-shot"),
        "arc": lambda: quality(
            "ARC-Challenge (train)",
            option_items("arc-challenge/train.jsonl", args.n),
            args.batch,
            "0-shot, train items",
        ),
        "mmlu": lambda: quality("MMLU (val)", mmlu_items(args.n), args.batch, "5-shot from dev, letters"),
    }
    for name in args.sets.split(","):
        if name == "speed":
            rows = speed(args.speed_n, args.batch)
            print(record("choices_speed", rows, SPEED_NOTES))
        else:
            rows = sets[name]()
            print(record("choices_quality", kept_rows(rows) + rows, QUALITY_NOTES))
        for row in rows:
            print(json.dumps(row), flush=True)


QUALITY_NOTES = (
    "Each cell: accuracy % [95% Wilson interval]. One pipeline per set: a `choices` stage with a UniTE "
    "ensemble of both models (equal weights, option probabilities averaged); members' picks read from "
    "its record. acc: summed log-probs; acc_norm: per byte. Wins/losses: items the ensemble gets right "
    "and its better member (by acc) wrong, and the reverse; p: exact McNemar. Float32, CPU, no chat "
    "template. See the script's docstring for the formats. Each set is measured by its own command "
    "(`--sets NAME`), so the machine's load when that set ran is in its note; the header's load is the last."
)
SPEED_NOTES = (
    "PIQA, one model per stage, loading and warm-up excluded: a choice stage scoring both options against a "
    "stage generating a one-letter answer (max_new_tokens 1, greedy) to the same question with the options "
    "listed. See bench/choices_quality.py."
)


def kept_rows(new_rows: list[dict]) -> list[dict]:
    """The recorded rows of the sets this run did not measure, so that one set can be re-run alone."""
    path = RESULTS / "choices_quality.md"
    if not path.exists():
        return []
    previous = json.loads(path.read_text().rsplit("```json", 1)[1].split("```", 1)[0])
    measured = {row["set"] for row in new_rows}
    return [row for row in previous if row["set"] not in measured]


if __name__ == "__main__":
    main()
