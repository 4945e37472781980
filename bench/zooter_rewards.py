"""Routers of the shipped experts trained with different rewards, on the 300 held-out Zooter bench items.

Each router checkpoint (trained for pipelines/routed_choices.yaml's experts, in the same order) gets the
router row of bench/zooter_quality.py: its argmax expert per item, accuracy with a 95% Wilson interval, and
paired wins/losses against the best single expert (exact McNemar p), plus how many items it sends to each
expert and its accuracy per data set. The experts' per-item correctness is read from
bench/results/zooter_items.jsonl (bench/zooter_items.py), so only the routers' encoder runs.

Default routers: routers/zooter (reward: acc, 0 or 1; finetune/zooter/router.yaml) and
routers/zooter_gold_probability (reward: the probability the expert gives the gold option;
finetune/zooter/router_gold_probability.yaml).

Usage: python bench/zooter_rewards.py [--n 300] [--routers routers/zooter,routers/zooter_gold_probability]
"""

import argparse
import json
import os
from pathlib import Path

from common import record
from zooter_items import read_item_rows
from zooter_quality import PIPELINE, load_items, router_choices, row

from fslm.eval.stats import paired
from fslm.runtime.router.checkpoint import read_router_config
from fslm.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def with_checkpoint(spec, checkpoint: Path):
    """The routed pipeline with its router reading `checkpoint`."""
    stage = spec.stages["route"]
    router = stage.router.model_copy(update={"checkpoint": checkpoint})
    return spec.model_copy(
        update={"stages": {**spec.stages, "route": stage.model_copy(update={"router": router})}}
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--routers", default="routers/zooter,routers/zooter_gold_probability")
    args = parser.parse_args()
    spec = load_spec(PIPELINE)
    experts = spec.stages["route"].router.experts
    items = load_items()[: args.n]
    rows = read_item_rows(args.n)
    scores = {name: [item["systems"][name]["correct"] for item in rows] for name in experts}
    best = max(experts, key=lambda name: sum(scores[name]))
    table = [row(f"expert {best} alone", scores[best], scores[best], 1, "best single expert")]
    routed_by_router = {}
    shares = {}
    for directory in args.routers.split(","):
        checkpoint = ROOT / directory
        config = read_router_config(checkpoint)
        if config.expert_names != experts:
            raise SystemExit(f"{checkpoint} was trained for {config.expert_names}, not {experts}")
        chosen = [experts[pick] for pick in router_choices(with_checkpoint(spec, checkpoint), items)]
        routed = [scores[name][index] for index, name in enumerate(chosen)]
        routed_by_router[directory] = routed
        reward = config.training["recipe"]["reward"]["metric"]
        labels = config.training["recipe"]["labels"]
        training = config.training
        note = (
            f"reward {reward}, temperature {labels['temperature']:g}; training: {training['flat']} of "
            f"{training['queries']} queries flat, label entropy {training['label_entropy']:.3f} "
            f"(uniform {training['max_entropy']:.3f}), epoch {training['best_epoch']}"
        )
        table.append(row(f"router {directory}", routed, scores[best], 1, note))
        per_domain = {
            domain: round(
                100
                * sum(v for v, item in zip(routed, items, strict=True) if item["domain"] == domain)
                / sum(1 for item in items if item["domain"] == domain),
                1,
            )
            for domain in sorted({item["domain"] for item in items})
        }
        shares[directory] = {"items per expert": {n: chosen.count(n) for n in experts}, "acc %": per_domain}
    names = list(routed_by_router)
    head_to_head = ""
    if len(names) == 2:
        versus = paired(routed_by_router[names[1]], routed_by_router[names[0]])
        head_to_head = (
            f" {names[1]} against {names[0]}, item by item: {versus.wins} wins, {versus.losses} losses "
            f"(p={versus.p_value:.3f})."
        )
    notes = (
        f"Items: the first {args.n} of finetune/data/zooter/bench.jsonl (100 each of ARC-Challenge, PIQA, "
        "MMLU), the held-out items of zooter_quality.md; per-item expert correctness from "
        "bench/results/zooter_items.jsonl; each router's argmax expert per item (cost_weight 0). Both "
        "routers were trained on the same 90 queries (18 held out to pick the epoch) from the same recorded "
        f"expert runs.{head_to_head}\n\nPer router: {json.dumps(shares)}\n\n"
        f"Command: nice -n 15 python bench/zooter_rewards.py --n {args.n} --routers {args.routers}"
    )
    path = record("zooter_rewards", table, notes)
    print(path.read_text())
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
