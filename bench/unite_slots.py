"""Token-level UniTE over two tuned generating stages: the command parser's `slots` stage on
SmolLM2-135M-Instruct and on Gemma-3-270m, each with a LoRA adapter trained on the same SNIPS frame rows by
the shipped slots recipe (finetune/command_parser/slots.yaml: rank 8 on every linear layer, one epoch,
learning rate 1e-3, cosine, batch 16), against a UniTE `slots` stage over both (union top-k, each member
with its adapter).

Each system is the shipped parser (pipelines/command_parser.yaml) with its `slots` stage swapped: the
`intent` stage is the shipped one in all three, so the frames differ only where the slots stage differs.
Adapters train on the first --train rows of finetune/data/snips/frames.jsonl (written by
bench/snips_frames.py) into finetune/adapters/unite_slots/, and are reused when present. Every system runs on
every SNIPS dev command in batches of --chunk (float32, CPU); an item is charged its batch's wall time over
the batch's size. Also a confidence cascade SmolLM2 → Gemma on the slots stage's mean token log-probability,
from the same per-item results (its curve against random escalation, and a 2-fold cross-fit threshold).

Usage: python bench/unite_slots.py [--train 3000] [--limit N] [--chunk 32] [--bootstrap 2000]
Writes bench/results/unite_slots.md and the per-item results bench/results/unite_slots_items.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml
from combine_tasks import cascade_rows
from common import BENCH, RESULTS, SHARED_DATA, machine, read_jsonl

from fslm.eval.frames import field_counts, frame_scores, frame_text, slot_f1_interval
from fslm.eval.stats import interval95, paired
from fslm.finetune.cascade.thresholds import StepResult
from fslm.nodes.cascade.confidence import step_confidence
from fslm.pipeline import load_pipeline

ROOT = BENCH.parent
SOURCES = {"smol": "smollm2-135m-instruct", "gemma": "gemma3-270m"}
NAMES = {"smol": "SmolLM2 slots", "gemma": "Gemma slots", "unite": "UniTE of both"}
HOME = ROOT / "finetune" / "adapters" / "unite_slots"


def parser_spec(system: str, adapters: bool = True) -> dict:
    """The shipped parser with its `slots` stage on `system` (`smol`, `gemma`, or `unite` of both), with
    absolute paths so it can be written anywhere; `adapters=False` leaves the slots stage bare, to train."""
    spec = yaml.safe_load((ROOT / "pipelines" / "command_parser.yaml").read_text())
    spec["models"] = {name: {"source": source, "dtype": "float32"} for name, source in SOURCES.items()}
    spec["stages"]["intent"]["adapter"] = str(ROOT / "adapters" / "tasks" / "snips")
    slots = {key: value for key, value in spec["stages"]["slots"].items() if key not in ("adapter", "model")}
    if system == "unite":
        slots["ensemble"] = {"members": [{"model": m, "adapter": str(HOME / m)} for m in SOURCES]}
    else:
        slots["model"] = system
        if adapters:
            slots["adapter"] = str(HOME / system)
    spec["stages"]["slots"] = slots
    return spec


def train(rows: int) -> dict[str, float]:
    """Train whichever member adapter is missing on the first `rows` frame rows; seconds each."""
    from fslm.cli.main import main as fslm

    recipe = yaml.safe_load((ROOT / "finetune" / "command_parser" / "slots.yaml").read_text())
    frames = ROOT / "finetune" / "data" / "snips" / "frames.jsonl"
    recipe["data"]["dataset"] |= {"path": str(frames), "limit": rows}
    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        for system in SOURCES:
            if (HOME / system / "adapter_config.json").is_file():
                continue
            pipeline = Path(folder) / f"{system}.yaml"
            pipeline.write_text(yaml.safe_dump(parser_spec(system, adapters=False)))
            path = Path(folder) / f"{system}_recipe.yaml"
            target = {"pipeline": str(pipeline), "stage": "slots"}
            path.write_text(yaml.safe_dump(recipe | {"target": target, "output": str(HOME / system)}))
            started = time.perf_counter()
            if fslm(["finetune", str(path)]):
                raise SystemExit(f"training the {system} slots adapter failed")
            seconds[system] = time.perf_counter() - started
    return seconds


def run_system(system: str, items: list[dict], chunk: int) -> list[dict]:
    """Per item: the frame written, its slots stage's mean token log-probability, measured seconds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parser.yaml"
        path.write_text(yaml.safe_dump(parser_spec(system)))
        pipeline = load_pipeline(path, store=":memory:", max_batch_size=chunk)
        try:
            pipeline.batch([{"text": item["text"]} for item in items[:2]])  # load and warm up
            found = []
            for start in range(0, len(items), chunk):
                batch = items[start : start + chunk]
                started = time.perf_counter()
                results = pipeline.batch([{"text": item["text"]} for item in batch])
                seconds = (time.perf_counter() - started) / len(batch)
                for result in results:
                    message = result.messages[-1]
                    confidence = step_confidence("mean_logprob", message) if system != "unite" else None
                    found.append({"frame": result.output, "confidence": confidence, "seconds": seconds})
            return found
        finally:
            pipeline.close()


def reference(item: dict) -> str:
    return frame_text(item["intent"], [(slot["slot"], slot["value"]) for slot in item["slots"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=3000, help="frame rows each adapter trains on (3000)")
    parser.add_argument("--limit", type=int, help="only the first N dev commands (default: all 700)")
    parser.add_argument("--chunk", type=int, default=32, help="items per batch; each is charged its share")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap rounds for the cascade's area")
    args = parser.parse_args()
    load_before = os.getloadavg()
    trained = train(args.train)
    items = read_jsonl(SHARED_DATA / "snips" / "dev.jsonl")[: args.limit]
    references = [reference(item) for item in items]
    found = {system: run_system(system, items, args.chunk) for system in NAMES}
    (RESULTS / "unite_slots_items.jsonl").write_text(
        "".join(
            json.dumps({"text": item["text"], "reference": references[i]} | {s: found[s][i] for s in found})
            + "\n"
            for i, item in enumerate(items)
        )
    )
    frames = {
        system: [
            frame_scores(row["frame"], gold)["frame"] for row, gold in zip(rows, references, strict=True)
        ]
        for system, rows in found.items()
    }
    rows = []
    for system, name in NAMES.items():
        pairs = [(row["frame"], gold) for row, gold in zip(found[system], references, strict=True)]
        interval = interval95(frames[system])
        low, high = slot_f1_interval(pairs)
        seconds = sum(row["seconds"] for row in found[system]) / len(items)
        rows.append(
            f"| {name} | {sum(frames[system]) / len(items):.3f} [{interval.low:.3f}, {interval.high:.3f}] | "
            f"{field_counts(pairs)[0].f1:.3f} [{low:.3f}, {high:.3f}] | {seconds:.4f} |"
        )
    steps = [
        [StepResult(found[s][i]["confidence"], frames[s][i] == 1.0, found[s][i]["seconds"]) for s in SOURCES]
        for i in range(len(items))
    ]
    cascade, note, cascade_frames = cascade_rows("smol → gemma", steps, args.bootstrap)
    rows.append(
        f"| {cascade['system']} | {cascade['acc % [95% Wilson]']} (%), {cascade['escalated %']}% escalated "
        f"| | {cascade['s/item']} |"
    )

    def versus(name: str, mine: list[float], theirs: str) -> str:
        result = paired(mine, frames[theirs])
        return f"- {name} vs {theirs}: {result.wins} wins / {result.losses} losses (p = {result.p_value:.3f})"

    comparisons = [versus("unite", frames["unite"], member) for member in SOURCES]
    comparisons += [versus("gemma", frames["gemma"], "smol"), versus("cascade", cascade_frames, "gemma")]
    training = ", ".join(f"{model} {seconds / 60:.1f} min" for model, seconds in trained.items())
    command = f"python bench/unite_slots.py --train {args.train}" + (
        f" --limit {args.limit}" if args.limit else ""
    )
    text = f"""# unite_slots: token-level UniTE over two tuned slots stages (SmolLM2, Gemma-3-270m)

Machine: {machine()}. Load average (1, 5, 15 min) {", ".join(f"{x:.2f}" for x in load_before)} at the start,
{", ".join(f"{x:.2f}" for x in os.getloadavg())} at the end. Command: `{command} --chunk {args.chunk}
--bootstrap {args.bootstrap}`. Adapters in {HOME.relative_to(ROOT)}/ on the first {args.train} frame rows;
trained in this run: {training or "none (existed)"}. Items: the first {len(items)} SNIPS dev commands; the
`intent` stage is the shipped one in every system. frame: every field right (Wilson 95%); slot F1: micro
over (slot, value) pairs (bootstrap 95%); s/item: the whole parser's measured seconds per command.

| system | frame | slot F1 | s/item |
|---|---|---|---|
{chr(10).join(rows)}

Paired frames on the same commands (exact McNemar):
{chr(10).join(comparisons)}

Cascade (confidence: the SmolLM2 slots stage's mean token log-probability; cost: measured seconds of the
parsers that ran):
{note}
"""
    (RESULTS / "unite_slots.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
