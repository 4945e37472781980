"""Reading recorded runs back: what the `fslm runs` commands and the web viewer show.

Everything here reads the run store only; no pipeline is compiled and no model is loaded.
"""

from dataclasses import dataclass

from fslm.errors import FslmError
from fslm.graph import StageMessage
from fslm.store import STATUSES, RunRecord, RunStore


@dataclass(frozen=True)
class RunDetails:
    record: RunRecord
    messages: list[StageMessage]
    outputs: dict[str, str]

    def to_dict(self) -> dict:
        return {**self.record.to_dict(), "messages": self.messages, "outputs": self.outputs}


@dataclass(frozen=True)
class StageDiff:
    stage: str
    a: str | None  # None: the stage did not run in that run
    b: str | None

    @property
    def same(self) -> bool:
        return self.a == self.b


def list_runs(
    store: RunStore, pipeline: str | None = None, status: str | None = None, limit: int | None = 50
) -> list[RunRecord]:
    if status is not None and status not in STATUSES:
        raise FslmError(f"unknown status '{status}'; statuses: {', '.join(STATUSES)}")
    return store.index.list(pipeline=pipeline, status=status, limit=limit)


def run_details(store: RunStore, run_id: str) -> RunDetails:
    """A run's record and its stage messages in order. `run_id` may be a unique prefix."""
    record = store.index.find(run_id)
    saved = store.saver.get_tuple({"configurable": {"thread_id": record.run_id, "checkpoint_ns": ""}})
    values = saved.checkpoint["channel_values"] if saved else {}
    return RunDetails(record=record, messages=list(values.get("log", [])), outputs=dict(values.get("outputs", {})))


def diff_runs(store: RunStore, first: str, second: str) -> tuple[RunDetails, RunDetails, list[StageDiff]]:
    """Stage outputs of two runs side by side, in the order the stages first appear in either run."""
    a, b = run_details(store, first), run_details(store, second)
    stages = list(dict.fromkeys([m["stage"] for m in a.messages] + [m["stage"] for m in b.messages]))
    return a, b, [StageDiff(stage, a.outputs.get(stage), b.outputs.get(stage)) for stage in stages]


def stage_pairs(store: RunStore, runs: list[RunRecord], stage: str) -> list[dict]:
    """(prompt, completion) pairs of `stage` from `runs`, one per time the stage ran: fine-tuning input."""
    pairs = []
    for record in runs:
        for message in run_details(store, record.run_id).messages:
            if message["stage"] == stage:
                pairs.append({"prompt": message["prompt"], "completion": message["text"], "run_id": record.run_id,
                              "stage": stage, "model": message["model"], "adapter": message["adapter"],
                              "edited": message.get("edited", False)})
    return pairs
