"""How `fslm runs show` and the viewer print a cascade stage's record: one row per step."""

from __future__ import annotations

from fslm.nodes.cascade.record import CascadeRecord
from fslm.spec.kind_hooks import Column, RecordTable


def cascade_table(record: CascadeRecord) -> RecordTable:
    """Each step's confidence against its threshold and its seconds, the answering step marked; steps after it
    did not run."""
    ran = {step["stage"]: step for step in record["steps"]}
    rows = []
    for number, stage in enumerate(record["stages"], start=1):
        step = ran.get(stage)
        if step is None:
            rows.append(("", str(number), stage, "not run", "", ""))
            continue
        threshold = "answers" if step["threshold"] is None else f"{step['threshold']:.3f}"
        mark = "✓" if stage == record["answered"] else ""
        numbers = (f"{step['confidence']:.3f}", threshold, f"{step['seconds']:.4f}")
        rows.append((mark, str(number), stage, *numbers))
    seconds = sum(step["seconds"] for step in record["steps"])
    answered = record["stages"].index(record["answered"])
    return RecordTable(
        (
            Column(""),
            Column("step", numeric=True),
            Column("stage"),
            Column(record["confidence"], numeric=True),
            Column("threshold", numeric=True),
            Column("seconds", numeric=True),
        ),
        tuple(rows),
        chosen=(answered,),
        heading=(
            f"cascade: {record['answered']} answered at step {answered + 1} of {len(record['stages'])} · "
            f"{len(record['steps'])} stage(s) run · {seconds:.4f}s"
        ),
    )


def answered_by(record: CascadeRecord) -> str:
    return record["answered"]
