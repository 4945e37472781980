"""Per-item results of each Zooter bench system on its held-out items (bench/results/zooter_items.jsonl).

One line per bench item (in finetune/data/zooter/bench.jsonl order): its index, domain and gold option, and
per system (the untuned base and each expert alone) the option it picked, whether that is the gold one, its
confidence (the probability of its pick) and the probability it gave the gold option. They are read from the
choice records bench/zooter_quality.py caches for each system, so the benches that need per-item correctness
(bench/zooter_cost.py) do arithmetic on this file instead of running the experts again.

Usage: python bench/zooter_items.py [--n 300] [--cache DIR]   (after zooter_quality.py ran the systems)
"""

import argparse
import json
import tempfile
from pathlib import Path

from common import RESULTS, read_jsonl
from zooter_quality import cached, load_items

ITEMS_FILE = RESULTS / "zooter_items.jsonl"
SYSTEMS = ["base", "arc", "piqa", "mmlu"]
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "fslm-zooter-bench"


def item_rows(cache: Path, count: int) -> list[dict]:
    items = load_items()[:count]
    runs = {name: cached(cache, name, count) for name in SYSTEMS}
    return [
        {
            "index": index,
            "domain": item["domain"],
            "gold": item["gold"],
            "systems": {name: _summary(runs[name][index], item["gold"]) for name in SYSTEMS},
        }
        for index, item in enumerate(items)
    ]


def _summary(record: dict, gold: str) -> dict:
    probabilities = record["probabilities"]
    gold_index = record["options"].index(gold)
    return {
        "chosen": record["chosen"],
        "correct": float(record["chosen"] == gold_index),
        "confidence": probabilities[record["chosen"]],
        "gold_probability": probabilities[gold_index],
    }


def read_item_rows(count: int) -> list[dict]:
    """The first `count` rows of the per-item file; exits when it holds fewer."""
    if not ITEMS_FILE.exists():
        raise SystemExit(f"{ITEMS_FILE} is missing: run python bench/zooter_items.py first")
    rows = read_jsonl(ITEMS_FILE)
    if len(rows) < count:
        raise SystemExit(f"{ITEMS_FILE} holds {len(rows)} items, not {count}: rerun bench/zooter_items.py")
    return rows[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="zooter_quality.py's --cache")
    args = parser.parse_args()
    rows = item_rows(args.cache, args.n)
    ITEMS_FILE.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} items to {ITEMS_FILE}")


if __name__ == "__main__":
    main()
