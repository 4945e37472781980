"""Write the data of the shipped Zooter proof (finetune/data/zooter/) from ../shared/data.

Three multiple-choice sets, each cut into three disjoint parts by fixed row indices:
- expert: tunes that set's LoRA expert (ARC-Challenge train rows 0-399, PIQA dev rows 0-99, all 285 MMLU
  dev rows);
- router: the router's training queries (ARC rows 400-499, PIQA rows 100-199, MMLU val rows i % 10 == 3, the
  first 100); the router's own held-out part, which picks its epoch, is cut from these;
- bench: the mixed held-out set (ARC rows 995-1094, PIQA rows 200-299, MMLU val rows i % 15 == 0, the first
  100): never trained on and never used to pick an epoch.

Both router.jsonl and bench.jsonl take one item of each set in turn. Each record: question, choices (the
option texts), gold (the right option's text), label (its index), domain (arc, piqa or mmlu: the router
recipe's tag field), subject (MMLU's subject, else the domain).

Usage: python bench/zooter_data.py
"""

import json
from pathlib import Path

from common import SHARED_DATA, read_jsonl

OUT = Path(__file__).resolve().parent.parent / "finetune" / "data" / "zooter"
LETTERS = "ABCD"


def record(row: dict, domain: str) -> dict:
    letters = [letter for letter in LETTERS if letter in row]
    choices = [row[letter] for letter in letters]
    label = letters.index(row["answer"])
    return {
        "question": row["question"],
        "choices": choices,
        "gold": choices[label],
        "label": label,
        "domain": domain,
        "subject": row.get("domain", domain),
    }


def parts() -> dict[str, list[dict]]:
    arc = [record(row, "arc") for row in read_jsonl(SHARED_DATA / "arc-challenge" / "train.jsonl")]
    piqa = [record(row, "piqa") for row in read_jsonl(SHARED_DATA / "piqa" / "dev.jsonl")]
    mmlu_dev = [record(row, "mmlu") for row in read_jsonl(SHARED_DATA / "mmlu" / "dev.jsonl")]
    mmlu_val = [record(row, "mmlu") for row in read_jsonl(SHARED_DATA / "mmlu" / "val.jsonl")]
    return {
        "arc_expert": arc[:400],
        "piqa_expert": piqa[:100],
        "mmlu_expert": mmlu_dev,
        "router": interleaved(
            arc[400:500], piqa[100:200], [row for index, row in enumerate(mmlu_val) if index % 10 == 3][:100]
        ),
        "bench": interleaved(
            arc[995:1095], piqa[200:300], [row for index, row in enumerate(mmlu_val) if index % 15 == 0][:100]
        ),
    }


def interleaved(*sets: list[dict]) -> list[dict]:
    """One item of each set in turn, so that the first 3k rows hold k of each (a recipe's `data.limit`, the
    bench's --n)."""
    return [row for group in zip(*sets, strict=True) for row in group]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in parts().items():
        path = OUT / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        print(f"{path.relative_to(OUT.parent.parent.parent)}: {len(rows)} rows")


if __name__ == "__main__":
    main()
