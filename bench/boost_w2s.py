"""EnsemW2S: a boosted SmolLM2 ensemble labels data for Gemma-3-270m, on ARC-Challenge or on SST-2.

1. Prepare the recipe's data/ directory.
   - `--task arc` (finetune/w2s_arc): the first --rows ARC-Challenge train rows of ../shared/data are scored
     by SmolLM2-135M-Instruct's mean loss per token of its gold answer; the lowest 40% are easy, the rest
     hard. The last --test hard rows (in file order) are the held-out test; the train file holds at most
     --easy easy rows and the other hard rows (the recipe's `max_hard` caps how many get labels).
   - `--task sst2` (finetune/w2s_sst2), the protocol of Burns et al. (2023): a seeded shuffle of the SST-2
     train split gives gold half A (--easy rows, the weak members' data) and half B (the next --rows rows,
     labelled by the weak members for Gemma; Gemma's ceiling learns their gold labels). The test is the
     first --test items of the dev split.
2. Run `fslm finetune w2s RECIPE --force` and record its report and phase times in
   bench/results/boost_w2s.md (ARC) or bench/results/boost_w2s_sst2.md.

Usage: python bench/boost_w2s.py [--task arc|sst2] [--rows N] [--easy N] [--test N] [--skip-prepare]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from common import BENCH, RESULTS, SHARED_DATA, machine, read_jsonl

RECIPES = {"arc": BENCH.parent / "finetune" / "w2s_arc", "sst2": BENCH.parent / "finetune" / "w2s_sst2"}
TITLES = {
    "arc": "EnsemW2S on ARC-Challenge (SmolLM2 weak ensemble → Gemma-3-270m)",
    "sst2": "EnsemW2S on SST-2 (SmolLM2 weak ensemble → Gemma-3-270m, Burns et al. halves)",
}
LETTERS = "ABCDE"
EASY_SHARE = 0.4
TEST_ITEMS = 300
SHUFFLE_SEED = 0


def rows() -> list[dict]:
    found = []
    for row in read_jsonl(SHARED_DATA / "arc-challenge" / "train.jsonl"):
        letters = [letter for letter in LETTERS if letter in row]
        if row["answer"] in letters:
            found.append(
                {
                    "question": row["question"],
                    "choices": [row[letter] for letter in letters],
                    "answer": letters.index(row["answer"]),
                }
            )
    return found


def prepare_arc(recipe_dir: Path, easy_cap: int, count: int, test_items: int) -> dict:
    from fslm.finetune.boost.members import StageModel
    from fslm.finetune.boost.split import weak_losses
    from fslm.finetune.boost.task import BoostExample
    from fslm.finetune.sources import Example
    from fslm.spec import load_spec

    items = rows()[:count]
    spec = load_spec(recipe_dir / "weak.yaml")
    weak = StageModel(spec, "answer", "float32")
    examples = [
        BoostExample(
            Example({"question": r["question"]}, r["choices"][r["answer"]]), tuple(r["choices"]), r["answer"]
        )
        for r in items
    ]
    started = time.perf_counter()
    losses = weak_losses(weak, examples)
    seconds = time.perf_counter() - started
    cut = sorted(losses)[int(EASY_SHARE * len(losses))]
    easy = [r | {"level": "easy"} for r, loss in zip(items, losses, strict=True) if loss < cut]
    hard = [r | {"level": "hard"} for r, loss in zip(items, losses, strict=True) if loss >= cut]
    test, rest = hard[-test_items:], hard[:-test_items]
    write_data(recipe_dir, easy[:easy_cap] + rest, test)
    return {
        "rows": len(items),
        "easy": len(easy),
        "hard": len(hard),
        "test": len(test),
        "loss_seconds": seconds,
    }


def prepare_sst2(recipe_dir: Path, half_a: int, half_b: int, test_items: int) -> dict:
    train = read_jsonl(SHARED_DATA / "sst2" / "train.jsonl")
    random.Random(SHUFFLE_SEED).shuffle(train)
    halves = [r | {"half": "A"} for r in train[:half_a]] + [
        r | {"half": "B"} for r in train[half_a : half_a + half_b]
    ]
    test = read_jsonl(SHARED_DATA / "sst2" / "dev.jsonl")[:test_items]
    write_data(recipe_dir, halves, test)
    # Half B with its gold labels alone: SmolLM2's counterpart of Gemma's ceiling (smol_gold.yaml).
    half_b = "".join(json.dumps(row) + "\n" for row in halves if row["half"] == "B")
    (recipe_dir / "data" / "half_b.jsonl").write_text(half_b)
    return {"half_a": half_a, "half_b": half_b, "test": len(test), "shuffle_seed": SHUFFLE_SEED}


def write_data(recipe_dir: Path, train: list[dict], test: list[dict]) -> None:
    data = recipe_dir / "data"
    data.mkdir(exist_ok=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))


def table(report: dict, metric: str) -> str:
    members = len(report["alphas"])
    names = {
        "weak_single": "weak: one SmolLM2 adapter (round 1)",
        "weak_ensemble": f"weak ensemble (α vote of {members})",
        "strong_on_single": "Gemma on single-weak labels",
        "strong_on_ensemble": "Gemma on ensemble labels",
        "strong_on_gold": "Gemma on gold labels (ceiling)",
    }
    lines = [f"| system | {metric} | 95% interval | PGR [95% bootstrap] |", "|---|---|---|---|"]
    for name, label in names.items():
        system = report["systems"][name]
        gap = report["pgr"].get(name)
        shown = ""
        if gap and gap["value"] is None:
            shown = "undefined: the ceiling does not beat the weak model"
        elif gap:
            shown = f"{gap['value']:.2f}" + (
                f" [{gap['low']:.2f}, {gap['high']:.2f}]"
                if gap["low"] is not None
                else " (no interval: the ceiling is at or below the weak model in most resamples)"
            )
        low, high = 100 * system["low"], 100 * system["high"]
        lines.append(f"| {label} | {100 * system['accuracy']:.1f} | [{low:.1f}, {high:.1f}] | {shown} |")
    lines += ["", "| paired (same items) | wins | losses | p (exact McNemar) |", "|---|---|---|---|"]
    for pair, result in report["paired"].items():
        lines.append(f"| {pair} | {result['wins']} | {result['losses']} | {result['p_value']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=sorted(RECIPES), default="arc")
    parser.add_argument(
        "--easy", type=int, default=60, help="ARC: most easy rows in the weak data; SST-2: half A's size"
    )
    parser.add_argument(
        "--rows", type=int, default=600, help="ARC: rows used (from the file's start); SST-2: half B's size"
    )
    parser.add_argument("--test", type=int, default=TEST_ITEMS, help="test items (ARC: hard rows held out)")
    parser.add_argument("--note", default="", help="a paragraph for the results file: why these sizes")
    parser.add_argument("--skip-prepare", action="store_true", help="reuse finetune/w2s_arc/data")
    args = parser.parse_args()
    from fslm.cli.main import main as fslm
    from fslm.finetune.boost.recipe import W2SRecipe
    from fslm.finetune.loading import read_recipe

    recipe = RECIPES[args.task] / "w2s.yaml"
    prepare = prepare_arc if args.task == "arc" else prepare_sst2
    load_before = os.getloadavg()
    prepared = None if args.skip_prepare else prepare(recipe.parent, args.easy, args.rows, args.test)
    print("prepared:", prepared, flush=True)
    started = time.perf_counter()
    code = fslm(["finetune", "w2s", str(recipe), "--force"])
    wall = time.perf_counter() - started
    if code:
        raise SystemExit(f"fslm finetune w2s exited {code}")
    output = read_recipe(recipe, W2SRecipe).output
    report = json.loads((output / "w2s.json").read_text())
    load_after = os.getloadavg()
    recipe_name = recipe.resolve().relative_to(BENCH.parent)
    rounds = "\n".join(
        f"| {r['round']} | {r['error']:.4f} | {r['alpha']:.3f} | {r['weight_entropy']:.3f} | "
        f"{r['unweighted_error']:.3f} | {r['seconds']:.0f} |"
        for r in report["rounds"]
    )
    phases = "\n".join(f"| {name} | {seconds:.0f} |" for name, seconds in report["phase_seconds"].items())
    metric, unit = ("acc_norm", "questions") if args.task == "arc" else ("acc", "sentences")
    text = f"""# boost_w2s: {TITLES[args.task]}

Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}; 2 cores shared with other jobs, load
average (1, 5, 15 min) {", ".join(f"{x:.2f}" for x in load_before)} at the start and
{", ".join(f"{x:.2f}" for x in load_after)} at the end. Command:
`nice -n 19 python bench/boost_w2s.py --task {args.task} --rows {args.rows} --easy {args.easy}
--test {args.test}`.
Data: {json.dumps(prepared)}; split {json.dumps(report["split"])}.

{args.note}

Accuracy ({metric}) is the choice stage's pick on {report["items"]} held-out test {unit};
PGR = (w2s − weak single) / (gold ceiling − weak single), 95% interval by a paired bootstrap over the test
items. Pseudo-labels agree with gold on the hard training items:
{json.dumps({k: round(v, 3) for k, v in report["label_agreement_with_gold"].items()})}. Stopped early:
{report["stopped"]}.

{table(report, metric)}

Boosting rounds (SAMME, sample-level error on the easy training items):

| round | ε (weighted) | α | weight entropy (nats) | unweighted error | seconds |
|---|---|---|---|---|---|
{rounds}

Phase wall times (seconds; the whole command took {wall:.0f} s, after the data preparation's weak loss
scoring):

| phase | seconds |
|---|---|
{phases}

The recipe ({recipe_name}):

```yaml
{recipe.read_text().strip()}
```
"""
    (RESULTS / ("boost_w2s.md" if args.task == "arc" else f"boost_w2s_{args.task}.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
