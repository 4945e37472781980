"""Out-of-scope queries on CLINC150: the tuned stage alone, and with `abstain:` at a threshold picked on
train queries it was not trained on.

- Calibration: the stage (pipelines/tasks/clinc150.yaml, as shipped) runs on the train queries after the
  first --trained of each label (those finetune/tasks/clinc150.yaml trained on), --calibrate of each label,
  in-scope and `oos` alike. Each threshold of a grid is scored by in-scope accuracy plus out-of-scope
  recall, as the stage with `abstain: {below: threshold, answer: oos}` would answer; the best is kept. The
  pick's probability is the record's (a lower bound under best-first search, see docs/choices.md), so the
  calibration is approximate; the dev runs below are exact.
- Dev: the whole dev split through the stage as shipped. The stage with that `abstain:` answers as the
  record says wherever the search's bounds on the pick's probability settle it (docs/choices.md); the items
  they do not settle run again through the stage with `abstain:`, which scores them in full, so every answer
  is the one the abstaining stage gives. Each system gets in-scope accuracy, out-of-scope recall and
  precision (Larson et al. 2019) and overall accuracy with Wilson 95% intervals; the two are paired item by
  item.

Usage: python bench/clinc150_oos.py [--trained 95] [--calibrate 5] [--limit N]
Writes bench/results/clinc150_oos.md.
"""

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import SHARED_DATA, read_jsonl, record

from fslm.eval.stats import interval95, paired
from fslm.nodes.choices.decision import unsettled
from fslm.nodes.choices.spec import AbstainSpec
from fslm.pipeline import Pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.spec import load_spec
from fslm.spec.models import PipelineSpec
from fslm.store import open_store

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "tasks" / "clinc150.yaml"
STAGE = "label"
OOS = "oos"
GRID = [round(0.05 * step, 2) for step in range(1, 20)]


def calibration_rows(trained: int, count: int) -> list[dict]:
    """The train queries after each label's first `trained`, `count` of each label."""
    seen: Counter[str] = Counter()
    rows = []
    for row in read_jsonl(SHARED_DATA / "clinc150" / "train.jsonl"):
        seen[row["label"]] += 1
        if trained < seen[row["label"]] <= trained + count:
            rows.append(row)
    return rows


def with_abstain(spec: PipelineSpec, below: float | None) -> PipelineSpec:
    if below is None:
        return spec
    stage = spec.stages[STAGE]
    changed = stage.model_copy(update={"abstain": AbstainSpec(below=below, answer=OOS)})
    return spec.model_copy(update={"stages": {**spec.stages, STAGE: changed}})


def run(spec: PipelineSpec, rows: list[dict], batch: int) -> tuple[list[dict], float]:
    refs = {name: ModelRef(source=model.source, dtype=model.dtype) for name, model in spec.models.items()}
    with tempfile.TemporaryDirectory() as folder, Runtime(refs, max_batch_size=batch) as runtime:
        pipeline = Pipeline(spec, runtime, open_store(Path(folder) / "runs.sqlite"))
        started = time.perf_counter()
        results = pipeline.batch([{"text": row["text"]} for row in rows])
        seconds = time.perf_counter() - started
    answers = []
    for row, result in zip(rows, results, strict=True):
        choices = result.messages[-1]["choices"]
        answers.append(
            {
                "reference": row["label"],
                "output": result.output,
                "pick": choices["labels"][choices["chosen"]],
                "probability": choices["probabilities"][choices["chosen"]],
                "record": choices,
            }
        )
    return answers, seconds


def abstained(answer: dict, below: float) -> str:
    return OOS if answer["probability"] < below else answer["pick"]


def balanced_score(answers: list[dict], below: float) -> float:
    in_scope = [abstained(a, below) == a["reference"] for a in answers if a["reference"] != OOS]
    recall = [abstained(a, below) == OOS for a in answers if a["reference"] == OOS]
    return sum(in_scope) / len(in_scope) + sum(recall) / len(recall)


def share(scores: list[float]) -> str:
    if not scores:
        return "none"
    interval = interval95(scores)
    return f"{sum(scores) / len(scores):.3f} [{interval.low:.3f}, {interval.high:.3f}] (n = {len(scores)})"


def summary(system: str, answers: list[dict], seconds: float) -> dict:
    correct = [float(a["output"] == a["reference"]) for a in answers]
    return {
        "system": system,
        "acc, all": share(correct),
        "in-scope acc": share([c for c, a in zip(correct, answers) if a["reference"] != OOS]),
        "oos recall": share([c for c, a in zip(correct, answers) if a["reference"] == OOS]),
        "oos precision": share([c for c, a in zip(correct, answers) if a["output"] == OOS]),
        "items/s": f"{len(answers) / seconds:.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trained", type=int, default=95, help="train queries per label the stage saw (95)")
    parser.add_argument("--calibrate", type=int, default=5, help="calibration queries per label (5)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev items")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    spec = load_spec(PIPELINE)
    if spec.stages[STAGE].adapter is None:
        raise SystemExit(
            "pipelines/tasks/clinc150.yaml has no adapter yet: train finetune/tasks/clinc150.yaml"
        )

    calibration, _ = run(spec, calibration_rows(args.trained, args.calibrate), args.batch)
    below = max(GRID, key=lambda value: balanced_score(calibration, value))
    print(f"calibration: {len(calibration)} queries, threshold {below}")

    dev = read_jsonl(SHARED_DATA / "clinc150" / "dev.jsonl")[: args.limit]
    plain, plain_seconds = run(spec, dev, args.batch)
    guarded = [{**answer, "output": abstained(answer, below)} for answer in plain]
    open_items = [index for index, answer in enumerate(plain) if unsettled(answer["record"], below)]
    if open_items:
        settled, _ = run(with_abstain(spec, below), [dev[index] for index in open_items], args.batch)
        for index, answer in zip(open_items, settled, strict=True):
            guarded[index] = answer
    rows = [
        summary("tuned stage (oos is one of its 151 labels)", plain, plain_seconds),
        summary(f"tuned stage, abstain below {below}", guarded, plain_seconds),
    ]
    pair = paired(
        [float(a["output"] == a["reference"]) for a in guarded],
        [float(a["output"] == a["reference"]) for a in plain],
    )
    notes = (
        f"Command: `python bench/clinc150_oos.py --trained {args.trained} --calibrate {args.calibrate}"
        f"{f' --limit {args.limit}' if args.limit else ''}`. The CLINC150 stage (SmolLM2-135M-Instruct, "
        "float32, 151 options searched best-first, adapter trained on the first "
        f"{args.trained} train queries of each label) on {len(dev)} dev queries. The threshold {below} was "
        f"picked on {len(calibration)} train queries the adapter did not see ({args.calibrate} of each "
        "label), maximising in-scope accuracy plus out-of-scope recall over thresholds 0.05 to 0.95. "
        f"{len(open_items)} dev items were not settled by the search's bounds and ran again in full; "
        "items/s is the stage's as shipped. Wilson 95% intervals. Paired on every dev item, abstaining "
        "against not: "
        f"{pair.wins} wins / {pair.losses} losses (exact sign test p = {pair.p_value:.2g})."
    )
    print(record("clinc150_oos", rows, notes))


if __name__ == "__main__":
    main()
