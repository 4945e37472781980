"""Write the command parser's training data (finetune/data/snips/frames.jsonl) from ../shared/data/snips.

Each of the first --rows records of SNIPS train keeps its `text` and `intent` and gains `frame`: the parsed
frame as the command parser writes it, `intent: PlayMusic; artist: westbam; service: google music` (the
intent, then each slot as `name: value` in the order the data lists them, values as the data spells them).
The stacked parser's slots stage (pipelines/command_parser.yaml) is tuned on all of them, the single-stage
parser (pipelines/command_parser_single.yaml) on the first 5000 (finetune/command_parser/).

Usage: python bench/snips_frames.py [--rows 13084]
"""

import argparse
import json
from pathlib import Path

from common import SHARED_DATA, read_jsonl

from fslm.eval.frames import frame_text

OUT = Path(__file__).resolve().parent.parent / "finetune" / "data" / "snips" / "frames.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=13084)
    args = parser.parse_args()
    source = SHARED_DATA / "snips" / "train.jsonl"
    rows = read_jsonl(source)[: args.rows]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as file:
        for row in rows:
            frame = frame_text(row["intent"], [(slot["slot"], slot["value"]) for slot in row["slots"]])
            file.write(json.dumps({"text": row["text"], "intent": row["intent"], "frame": frame}) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
