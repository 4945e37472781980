"""`fslm finetune boost` on the real SmolLM2: boost three ARC-Challenge adapters, then score the boost stage.

1. Write finetune/w2s_arc/data/boost_train.jsonl: the first --train ARC-Challenge train rows of
   ../shared/data (options and gold index), and run `fslm finetune boost finetune/w2s_arc/boost.yaml`.
2. Score a boost choice stage over the members (their α from the checkpoint) on the next --test rows. Its
   record holds every member's own pick, so one pass gives each member alone and the α-weighted vote on the
   same items: accuracy (acc_norm, per byte) with 95% Wilson intervals and paired wins / losses of the vote
   against its best member.
3. Write bench/results/boost_arc.md with the rounds (ε, α, weight entropy, time) and the machine's load.

Usage: python bench/boost_arc.py [--train 64] [--test 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime

from boost_w2s import RECIPE_DIR, rows
from common import BENCH, RESULTS, machine


def boosted_pipeline(members: list[str]) -> str:
    listed = ", ".join(f"{{model: smol, adapter: ../adapters/boost_arc/{name}}}" for name in members)
    return (
        "models:\n  smol: {source: smollm2-135m-instruct, dtype: float32}\n"
        "inputs: [question, choices]\n"
        "stages:\n  answer:\n"
        f"    boost: {{members: [{listed}], checkpoint: ../adapters/boost_arc}}\n"
        '    prompt: "Question: {{ question }}\\nAnswer:"\n'
        '    choices: "{{ choices }}"\n    normalize: byte\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--test", type=int, default=300)
    args = parser.parse_args()
    from fslm.cli.main import main as fslm
    from fslm.eval.stats import interval95, paired
    from fslm.pipeline import load_pipeline

    load_before = os.getloadavg()
    items = rows()
    data = RECIPE_DIR / "data"
    data.mkdir(exist_ok=True)
    (data / "boost_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items[: args.train]))
    started = time.perf_counter()
    if fslm(["finetune", "boost", str(RECIPE_DIR / "boost.yaml"), "--force"]):
        raise SystemExit("fslm finetune boost failed")
    boost_seconds = time.perf_counter() - started
    output = BENCH.parent / "finetune" / "adapters" / "boost_arc"
    record = json.loads((output / "boost.json").read_text())
    members = [member["adapter"] for member in record["members"]]
    pipeline_file = RECIPE_DIR / "boosted.yaml"
    pipeline_file.write_text(boosted_pipeline(members))
    test = items[args.train : args.train + args.test]
    pipeline = load_pipeline(pipeline_file, store=":memory:", max_batch_size=8)
    started = time.perf_counter()
    results = pipeline.batch([{"question": r["question"], "choices": r["choices"]} for r in test])
    score_seconds = time.perf_counter() - started
    correct: dict[str, list[float]] = {name: [] for name in [*members, "α vote"]}
    for item, result in zip(test, results, strict=True):
        choices = result.messages[-1]["choices"]
        for name, scorer in zip(members, choices["scorers"], strict=True):
            correct[name].append(float(scorer["chosen"] == item["answer"]))
        correct["α vote"].append(float(choices["chosen"] == item["answer"]))
    best = max(members, key=lambda name: sum(correct[name]))
    lines = ["| system | α | acc_norm | 95% interval |", "|---|---|---|---|"]
    for name, scores in correct.items():
        interval = interval95(scores)
        alpha = next((f"{m['alpha']:.3f}" for m in record["members"] if m["adapter"] == name), "")
        mean = 100 * sum(scores) / len(scores)
        lines.append(
            f"| {name} | {alpha} | {mean:.1f} | [{100 * interval.low:.1f}, {100 * interval.high:.1f}] |"
        )
    versus = paired(correct["α vote"], correct[best])
    rounds = "\n".join(
        f"| {r['round']} | {r['error']:.4f} | {r['alpha']:.3f} | {r['weight_entropy']:.3f} | "
        f"{r['unweighted_error']:.3f} | {r['seconds']:.0f} |"
        for r in record["rounds"]
    )
    load_after = os.getloadavg()
    text = f"""# boost_arc: fslm finetune boost on SmolLM2-135M-Instruct (ARC-Challenge)

Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}; 2 cores shared with other jobs, load
average (1, 5, 15 min) {", ".join(f"{x:.2f}" for x in load_before)} at the start and
{", ".join(f"{x:.2f}" for x in load_after)} at the end. Command:
`python bench/boost_arc.py --train {args.train} --test {args.test}` (recipe finetune/w2s_arc/boost.yaml).

Boosting ({len(record["rounds"])} rounds on the first {args.train} ARC-Challenge train rows, SAMME with
K = {record["classes"]}, sample-level error; {boost_seconds:.0f} s in all).
Stopped early: {record["stopped"]}.

| round | ε (weighted) | α | weight entropy (nats) | unweighted error | seconds |
|---|---|---|---|---|---|
{rounds}

The boost choice stage (members' option probabilities mixed with α) on the next {len(test)} rows, each
member's own pick read from the same record ({score_seconds:.0f} s):

{chr(10).join(lines)}

α vote against its best member ({best}), same items: {versus.wins} wins, {versus.losses} losses,
p = {versus.p_value:.3f} (exact McNemar).
"""
    (RESULTS / "boost_arc.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
