"""Reading recorded runs back: what the `fslm runs` commands and the web viewer show.

Everything here reads the run store only; no pipeline is compiled and no model is loaded.
"""

from dataclasses import dataclass
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

from fslm.errors import FslmError
from fslm.graph import StageMessage
from fslm.spec.run_input import RunInput
from fslm.store import STATUSES, DamagedStoreError, RunRecord, RunStore


def _classes(hint: Any) -> tuple[type, ...]:
    """What `isinstance` checks a value of the type `hint` against: an int is a float too (JSON writes 1.0
    as 1), a TypedDict is a dict, `list[str]` a list."""
    if hint is float:
        return (int, float)
    if is_typeddict(hint):
        return (dict,)
    if isinstance(hint, UnionType):
        return tuple(kind for arg in get_args(hint) for kind in _classes(arg))
    return (get_origin(hint) or hint,)


# What a stage message must hold (its required keys) and may hold, for the commands and the viewer to show it.
MESSAGE_FIELDS = {field: _classes(hint) for field, hint in get_type_hints(StageMessage).items()}


@dataclass(frozen=True)
class RunDetails:
    record: RunRecord
    input: RunInput  # as given: a structured input stays an object (the record holds it as JSON text)
    messages: list[StageMessage]
    outputs: dict[str, str]

    def to_dict(self) -> dict:
        return {
            **self.record.to_dict(),
            "input": self.input,
            "messages": self.messages,
            "outputs": self.outputs,
        }


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
    if limit is not None and limit < 1:
        raise FslmError(f"the limit must be at least 1 run, not {limit}")
    return store.index.list(pipeline=pipeline, status=status, limit=limit)


def run_details(store: RunStore, run_id: str) -> RunDetails:
    """A run's record and its stage messages in order. `run_id` may be a unique prefix."""
    record = store.index.find(run_id)
    try:
        saved = store.saver.get_tuple({"configurable": {"thread_id": record.run_id, "checkpoint_ns": ""}})
    except Exception as error:  # LangGraph's decoders raise many kinds of error on bytes they did not write
        raise damaged_state(store, record, f"{type(error).__name__}: {error}") from error
    checkpoint: object = saved.checkpoint if saved else {"channel_values": {}}  # as read: maybe not a dict
    values = checkpoint.get("channel_values") if isinstance(checkpoint, dict) else None
    values = checked_values(store, record, values)
    log, outputs = values.get("log", []), values.get("outputs", {})
    return RunDetails(
        record=record, input=values.get("input", record.input), messages=list(log), outputs=dict(outputs)
    )


def checked_values(store: RunStore, record: RunRecord, values: object) -> dict[str, Any]:
    """`values` (the channel values of one of the run's checkpoints) if they hold what fslm records: its
    input, stage log and outputs; else DamagedStoreError."""
    if not isinstance(values, dict):
        raise damaged_state(store, record, "it holds no stage values")
    problem = _state_problem(
        values.get("input", record.input), values.get("log", []), values.get("outputs", {})
    )
    if problem is not None:
        raise damaged_state(store, record, problem)
    return values


def _state_problem(run_input: object, log: object, outputs: object) -> str | None:
    structured = isinstance(run_input, dict) and all(isinstance(key, str) for key in run_input)
    if not isinstance(run_input, str) and not structured:
        return "its input is neither text nor a JSON object"
    if not isinstance(log, list) or not isinstance(outputs, dict):
        return "its stage log or outputs are not what fslm records"
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in outputs.items()):
        return "a stage output is not text"
    for number, message in enumerate(log, 1):
        if not isinstance(message, dict):
            return f"stage message {number} is not a record"
        for field, kind in MESSAGE_FIELDS.items():
            required = field in StageMessage.__required_keys__
            if (field in message or required) and not isinstance(message.get(field), kind):
                return f"stage message {number} has {field} {message.get(field)!r}"
    return None


def damaged_state(store: RunStore, record: RunRecord, problem: str) -> DamagedStoreError:
    return DamagedStoreError(
        f"the run store {store.where} is damaged: the saved state of run {record.run_id} "
        f"cannot be read ({problem[:300]}). fslm did not change it"
    )


def diff_runs(store: RunStore, first: str, second: str) -> tuple[RunDetails, RunDetails, list[StageDiff]]:
    """Stage outputs of two runs side by side, in the order the stages first appear in either run."""
    a, b = run_details(store, first), run_details(store, second)
    stages = list(dict.fromkeys([m["stage"] for m in a.messages] + [m["stage"] for m in b.messages]))
    return a, b, [StageDiff(stage, a.outputs.get(stage), b.outputs.get(stage)) for stage in stages]


def stage_pairs(store: RunStore, runs: list[RunRecord], stage: str) -> list[dict]:
    """(prompt, completion) pairs of `stage` from `runs`, one per time the stage ran: fine-tuning input."""
    pairs = []
    for record in runs:
        details = run_details(store, record.run_id)
        for message in details.messages:
            if message["stage"] == stage:
                pairs.append(
                    {
                        "prompt": message["prompt"],
                        "completion": message["text"],
                        "input": details.input,
                        "run_id": record.run_id,
                        "stage": stage,
                        "model": message["model"],
                        "adapter": message["adapter"],
                        "edited": message.get("edited", False),
                    }
                )
    return pairs
