"""Write the CLINC150 stage's training rows (finetune/data/clinc150/train.jsonl) from ../shared/data/clinc150.

CLINC150's train split lists its 15,100 queries grouped by intent, 100 for each of the 150 intents and 100
out-of-scope (`oos`) ones, so a recipe's `limit` would take the first few intents only. This keeps the first
--per-label queries of every label, in-scope and `oos` alike, in train order.

Usage: python bench/clinc150_rows.py [--per-label 95]
"""

import argparse
import json
from collections import Counter
from pathlib import Path

from common import SHARED_DATA, read_jsonl

OUT = Path(__file__).resolve().parent.parent / "finetune" / "data" / "clinc150" / "train.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-label", type=int, default=95)
    args = parser.parse_args()
    taken: Counter[str] = Counter()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as file:
        for row in read_jsonl(SHARED_DATA / "clinc150" / "train.jsonl"):
            if taken[row["label"]] < args.per_label:
                taken[row["label"]] += 1
                file.write(json.dumps({"text": row["text"], "label": row["label"]}) + "\n")
    print(f"wrote {sum(taken.values())} rows ({len(taken)} labels) to {OUT}")


if __name__ == "__main__":
    main()
