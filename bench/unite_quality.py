"""UniTE quality: SmolLM2-135M-Instruct, Gemma-3-270m and their UniTE ensemble, n items per set (default 100).

Multiple choice (ARC-Challenge 0-shot, PIQA 0-shot, MMLU 5-shot from its dev split), answered with a single
token as in the paper: after "Answer:" each model's next-token logits are read once, and the option whose
letter token (" A", " B", …) scores highest wins. A member's pick is the argmax of its own logits over the
letter tokens. The ensemble's pick is UniTE's first decoding step: the union of each member's top-10 tokens,
plus the option letters (so that every letter has a score), each member's softmax over that union, averaged
with equal weights; the letter with the highest averaged probability wins.

Generative (TriviaQA, NQ): the data folder's few-shot prompt.txt, then "Question: …\\nAnswer:", greedy, up to
32 new tokens, stopped at a newline; scored with fslm.eval.metrics "contains" (a normalised alias occurs in
the answer) and "exact" (the normalised answer is an alias), best alias counts. The ensemble is
`Runtime.generate_ensemble` (UniTE, top-10, equal weights).

Items are evenly spaced through each file (every len/n-th), so MMLU covers many subjects.
Usage: python bench/unite_quality.py [--n 100] [--sets arc,piqa,triviaqa,mmlu,nq] [--batch 16]
"""

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch
from common import SHARED_DATA, read_jsonl, record

from fslm.eval.metrics import score
from fslm.runtime import BASE_ADAPTER_NAME, GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.runtime.ensemble import (
    EnsembleMember,
    EnsembleRequest,
    LoadedMember,
    MemberBatch,
    token_text_for,
    union_average,
)
from fslm.runtime.prompt import encode_prompt

MEMBERS = {"smol": ModelRef("smollm2-135m-instruct", "float32"), "gemma": ModelRef("gemma3-270m", "float32")}
TOP_K = 10
EQUAL = (0.5, 0.5)
GENERATIVE = GenerationParams(max_new_tokens=32, stop=("\n",))
SetRunner = Callable[[Runtime, int, int], list[dict]]


def evenly_spaced(items: list[dict], n: int) -> list[dict]:
    step = max(1, len(items) // n)
    return items[::step][:n]


def letters_of(item: dict) -> str:
    return "".join(letter for letter in "ABCDE" if letter in item)


def choice_block(item: dict) -> str:
    options = "\n".join(f"{letter}. {item[letter]}" for letter in letters_of(item))
    return f"Question: {item['question']}\n{options}\nAnswer:"


def zero_shot(item: dict) -> str:
    return choice_block(item)


def mmlu_five_shot(shots: dict[str, list[dict]]) -> Callable[[dict], str]:
    def prompt(item: dict) -> str:
        domain = item["domain"]
        examples = "".join(f"{choice_block(shot)} {shot['answer']}\n\n" for shot in shots[domain][:5])
        return f"The following are multiple choice questions (with answers) about {domain}.\n\n{examples}" + (
            choice_block(item)
        )

    return prompt


def unite_member(runtime: Runtime, handle: str) -> LoadedMember:
    base = runtime.base_for(handle)
    return LoadedMember(base, BASE_ADAPTER_NAME, token_text_for(base), handle)


def next_token_logits(
    runtime: Runtime, member: LoadedMember, prompts: list[str], batch: int
) -> list[torch.Tensor]:
    """Each prompt's next-token logits from one left-padded forward pass per chunk (no chat template)."""
    tokenizer = member.base.tokenizer
    ids = [
        encode_prompt(tokenizer, GenerationRequest(member.label, p, chat_template=False))[1] for p in prompts
    ]
    # Chunks of similar length: MMLU's 5-shot prompts run from about 300 to 2,800 tokens.
    order = sorted(range(len(ids)), key=lambda index: len(ids[index]))
    rows: dict[int, torch.Tensor] = {}
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        with torch.inference_mode():
            rows.update(zip(chunk, MemberBatch(member, [ids[index] for index in chunk]).logits, strict=True))
    return [rows[index] for index in range(len(ids))]


def pick_letter(members: list[LoadedMember], logits: list[torch.Tensor], letters: str, weights: tuple) -> str:
    """The option whose letter token gets the highest UniTE first-step probability (see the module doc)."""
    letter_keys = [f" {letter}".encode() for letter in letters]
    tops = [[m.text.keys[i] for i in row.topk(TOP_K).indices.tolist()] for m, row in zip(members, logits)]
    union = list(dict.fromkeys([*(key for top in tops for key in top), *letter_keys]))
    average = union_average(members, logits, union, weights, 0.0)
    letter_probs = torch.stack([average[union.index(key)] for key in letter_keys])
    return letters[int(letter_probs.argmax())]


def letters_in_union(members: list[LoadedMember], logits: list[torch.Tensor], letters: str) -> bool:
    tops = {m.text.keys[i] for m, row in zip(members, logits) for i in row.topk(TOP_K).indices.tolist()}
    return all(f" {letter}".encode() in tops for letter in letters)


def multiple_choice(runtime: Runtime, items: list[dict], prompt: Callable[[dict], str], batch: int) -> dict:
    members = [unite_member(runtime, handle) for handle in MEMBERS]
    prompts = [prompt(item) for item in items]
    logits = [next_token_logits(runtime, member, prompts, batch) for member in members]
    correct = {handle: 0 for handle in MEMBERS} | {"ensemble": 0}
    covered = 0
    for index, item in enumerate(items):
        letters, answer = letters_of(item), item["answer"]
        row = [member_logits[index] for member_logits in logits]
        for member, member_row in zip(members, row):
            correct[member.label] += pick_letter([member], [member_row], letters, (1.0,)) == answer
        correct["ensemble"] += pick_letter(members, row, letters, EQUAL) == answer
        covered += letters_in_union(members, row, letters)
    return {name: hits / len(items) for name, hits in correct.items()} | {"letters_in_union": covered}


def generative(runtime: Runtime, items: list[dict], shots: str) -> dict[str, dict[str, float]]:
    prompts = [f"{shots.strip()}\n\nQuestion: {item['question']}\nAnswer:" for item in items]
    texts = {
        handle: [
            g.text
            for g in runtime.generate(
                [GenerationRequest(handle, p, chat_template=False, params=GENERATIVE) for p in prompts]
            )
        ]
        for handle in MEMBERS
    }
    members = tuple(EnsembleMember(handle) for handle in MEMBERS)
    ensemble = runtime.generate_ensemble(
        [EnsembleRequest(members, p, top_k=TOP_K, chat_template=False, params=GENERATIVE) for p in prompts]
    )
    texts["ensemble"] = [result.generation.text for result in ensemble]
    for name, outputs in texts.items():  # a look at the answers, on the console only
        print(name, [(item["question"][:40], text) for item, text in zip(items[:3], outputs)], flush=True)
    return {
        metric: {
            name: sum(score(metric, text, item["answer"]) for text, item in zip(outputs, items)) / len(items)
            for name, outputs in texts.items()
        }
        for metric in ("contains", "exact")
    }


def table_row(data: str, scoring: str, n: int, accuracy: dict[str, float], note: str = "") -> dict:
    best_name = max(MEMBERS, key=lambda handle: accuracy[handle])
    gain = accuracy["ensemble"] - accuracy[best_name]
    return {
        "set": data,
        "scoring": scoring,
        "n": n,
        **{handle: f"{accuracy[handle]:.2f}" for handle in MEMBERS},
        "UniTE": f"{accuracy['ensemble']:.2f}",
        "ensemble − best member": f"{gain:+.2f} (vs {best_name})",
        "note": note,
    }


def choice_set(title: str, file: str, prompt: Callable[[dict], str], note: str) -> SetRunner:
    def run(runtime: Runtime, n: int, batch: int) -> list[dict]:
        items = evenly_spaced(read_jsonl(SHARED_DATA / file), n)
        accuracy = multiple_choice(runtime, items, prompt, batch)
        covered = accuracy.pop("letters_in_union")
        full_note = f"{note}; all letters in the top-10 union on {covered}/{len(items)}"
        return [table_row(title, "first-token letter", len(items), accuracy, full_note)]

    return run


def generative_set(title: str, folder: str) -> SetRunner:
    def run(runtime: Runtime, n: int, batch: int) -> list[dict]:
        items = evenly_spaced(read_jsonl(SHARED_DATA / folder / "dev.jsonl"), n)
        shots = (SHARED_DATA / folder / "prompt.txt").read_text()
        return [
            table_row(title, f"generated, {metric}", len(items), accuracy, "5-shot prompt.txt")
            for metric, accuracy in generative(runtime, items, shots).items()
        ]

    return run


def mmlu_shots() -> dict[str, list[dict]]:
    shots: dict[str, list[dict]] = {}
    for shot in read_jsonl(SHARED_DATA / "mmlu" / "dev.jsonl"):
        shots.setdefault(shot["domain"], []).append(shot)
    return shots


SETS: dict[str, Callable[[], SetRunner]] = {
    "arc": lambda: choice_set(
        "ARC-Challenge (train)", "arc-challenge/train.jsonl", zero_shot, "0-shot, chance 0.25"
    ),
    "piqa": lambda: choice_set("PIQA (dev)", "piqa/dev.jsonl", zero_shot, "0-shot, chance 0.50"),
    "mmlu": lambda: choice_set(
        "MMLU (val)", "mmlu/val.jsonl", mmlu_five_shot(mmlu_shots()), "5-shot, chance 0.25"
    ),
    "triviaqa": lambda: generative_set("TriviaQA (dev)", "triviaqa"),
    "nq": lambda: generative_set("NQ (dev)", "nq"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument(
        "--sets", default="arc,piqa,triviaqa,mmlu,nq", help=f"in this order, from {','.join(SETS)}"
    )
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    chosen = args.sets.split(",")
    unknown = [key for key in chosen if key not in SETS]
    if unknown:
        sys.exit(f"unknown sets {unknown}; sets: {', '.join(SETS)}")
    # A run of some sets gets its own file, so it does not overwrite the figures of the others.
    name = "unite_quality" if args.sets == parser.get_default("sets") else "unite_quality_" + "_".join(chosen)
    loads = [os.getloadavg()[0]]
    rows: list[dict] = []
    started = time.perf_counter()
    with Runtime(MEMBERS, max_batch_size=args.batch) as runtime:
        for done, key in enumerate(chosen, start=1):
            rows += SETS[key]()(runtime, args.n, args.batch)
            loads.append(os.getloadavg()[0])
            # Recorded after every set, so a long run that is cut short still leaves what it measured.
            path = record(name, rows, notes(args, chosen[:done], time.perf_counter() - started, loads))
            print(f"{key} done after {time.perf_counter() - started:.0f} s", rows[-1], flush=True)
    print(path.read_text())


def notes(args: argparse.Namespace, done: list[str], seconds: float, loads: list[float]) -> str:
    return (
        "SmolLM2-135M-Instruct (smol) + Gemma-3-270m (gemma), float32, raw prompts (no chat template), "
        f"n = {args.n} evenly spaced items per set. UniTE: top-{TOP_K} union, equal weights. Multiple choice "
        'is scored on the first token: each member\'s argmax over the option-letter tokens (" A", " B", …); '
        "the ensemble's pick is the letter with the highest average of the members' softmaxes over their "
        "top-10 union plus the letters (UniTE's first step). Generative sets: 5-shot prompt.txt, greedy, ≤ "
        "32 new tokens, stop at newline, fslm.eval.metrics contains / exact against every alias. "
        f"Sets measured: {', '.join(done)} in {seconds:.0f} s; 1-minute load {min(loads):.1f} to "
        f"{max(loads):.1f} (2 cores, shared). Command: `python bench/unite_quality.py --n {args.n} --sets "
        f"{args.sets}`."
    )


if __name__ == "__main__":
    main()
