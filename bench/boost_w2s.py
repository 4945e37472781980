"""EnsemW2S on ARC-Challenge: a boosted SmolLM2 ensemble labels hard questions for Gemma-3-270m.

1. Prepare (`finetune/w2s_arc/data/`): the first --rows ARC-Challenge train rows of ../shared/data are
   scored by SmolLM2-135M-Instruct's mean loss per token of its gold answer; the lowest 40% are easy, the
   rest hard. The last --test hard rows (in file order) are the held-out test; the train file holds at
   most --easy easy rows and the other hard rows (the recipe's `max_hard` caps how many get labels).
2. Run `fslm finetune w2s RECIPE --force` and record its report and phase times in
   bench/results/boost_w2s.md.

Usage: python bench/boost_w2s.py [--rows 600] [--easy 60] [--test 300] [--recipe finetune/w2s_arc/w2s.yaml]
       [--skip-prepare]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from common import BENCH, RESULTS, SHARED_DATA, machine, read_jsonl

RECIPE_DIR = BENCH.parent / "finetune" / "w2s_arc"
LETTERS = "ABCDE"
EASY_SHARE = 0.4
TEST_ITEMS = 300
RECIPE = RECIPE_DIR / "w2s.yaml"


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


def prepare(easy_cap: int, count: int, test_items: int) -> dict:
    from fslm.finetune.boost.members import StageModel
    from fslm.finetune.boost.split import weak_losses
    from fslm.finetune.boost.task import BoostExample
    from fslm.finetune.sources import Example
    from fslm.spec import load_spec

    items = rows()[:count]
    spec = load_spec(RECIPE_DIR / "weak.yaml")
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
    data = RECIPE_DIR / "data"
    data.mkdir(exist_ok=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in easy[:easy_cap] + rest))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    return {
        "rows": len(items),
        "easy": len(easy),
        "hard": len(hard),
        "test": len(test),
        "loss_seconds": seconds,
    }


def table(report: dict) -> str:
    members = len(report["alphas"])
    names = {
        "weak_single": "weak: one SmolLM2 adapter (round 1)",
        "weak_ensemble": f"weak ensemble (α vote of {members})",
        "strong_on_single": "Gemma on single-weak labels",
        "strong_on_ensemble": "Gemma on ensemble labels",
        "strong_on_gold": "Gemma on gold labels (ceiling)",
    }
    lines = ["| system | acc_norm | 95% interval | PGR [95% bootstrap] |", "|---|---|---|---|"]
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
    parser.add_argument("--easy", type=int, default=60, help="most easy rows in the weak training data")
    parser.add_argument("--rows", type=int, default=600, help="ARC rows used (from the start of the file)")
    parser.add_argument("--test", type=int, default=TEST_ITEMS, help="hard rows held out as the test")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the w2s recipe (data under its data/)")
    parser.add_argument("--note", default="", help="a paragraph for the results file: why these sizes")
    parser.add_argument("--skip-prepare", action="store_true", help="reuse finetune/w2s_arc/data")
    args = parser.parse_args()
    from fslm.cli.main import main as fslm
    from fslm.finetune.boost.recipe import W2SRecipe
    from fslm.finetune.loading import read_recipe

    load_before = os.getloadavg()
    prepared = None if args.skip_prepare else prepare(args.easy, args.rows, args.test)
    print("prepared:", prepared, flush=True)
    started = time.perf_counter()
    code = fslm(["finetune", "w2s", str(args.recipe), "--force"])
    wall = time.perf_counter() - started
    if code:
        raise SystemExit(f"fslm finetune w2s exited {code}")
    output = read_recipe(args.recipe, W2SRecipe).output
    report = json.loads((output / "w2s.json").read_text())
    load_after = os.getloadavg()
    recipe_name = args.recipe.resolve().relative_to(BENCH.parent)
    rounds = "\n".join(
        f"| {r['round']} | {r['error']:.4f} | {r['alpha']:.3f} | {r['weight_entropy']:.3f} | "
        f"{r['unweighted_error']:.3f} | {r['seconds']:.0f} |"
        for r in report["rounds"]
    )
    phases = "\n".join(f"| {name} | {seconds:.0f} |" for name, seconds in report["phase_seconds"].items())
    text = f"""# boost_w2s: EnsemW2S on ARC-Challenge (SmolLM2 weak ensemble → Gemma-3-270m)

Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}; 2 cores shared with other jobs, load
average (1, 5, 15 min) {", ".join(f"{x:.2f}" for x in load_before)} at the start and
{", ".join(f"{x:.2f}" for x in load_after)} at the end. Command:
`nice -n 19 python bench/boost_w2s.py --rows {args.rows} --easy {args.easy} --test {args.test}
--recipe {recipe_name}`.
Data: {json.dumps(prepared)}; split {json.dumps(report["split"])}.

{args.note}

Accuracy is the choice stage's pick by per-byte log-likelihood (acc_norm) on {report["items"]} held-out hard
test questions; PGR = (w2s − weak single) / (gold ceiling − weak single), 95% interval by a paired bootstrap
over the test items. Pseudo-labels agree with gold on the hard training items:
{json.dumps({k: round(v, 3) for k, v in report["label_agreement_with_gold"].items()})}. Stopped early:
{report["stopped"]}.

{table(report)}

Boosting rounds (SAMME, K = 4, sample-level error on the easy training items):

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
{args.recipe.read_text().strip()}
```
"""
    (RESULTS / "boost_w2s.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
