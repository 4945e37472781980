"""A run's checkpoints, taken from the store it ran against and put into another, history and all.

A worker runs items against a store in its own memory; the driver puts each finished run into the run store
through that store's own checkpointer, so the run reads back, replays and exports as a local run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, CheckpointMetadata


@dataclass(frozen=True)
class SavedCheckpoint:
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    namespace: str
    writes: list[tuple[str, str, Any]]  # (task id, channel, value): the writes pending on this checkpoint


def take_run(saver: BaseCheckpointSaver, run_id: str) -> list[SavedCheckpoint]:
    """Run `run_id`'s checkpoints, oldest first, with their pending writes."""
    history = list(saver.list({"configurable": {"thread_id": run_id}}))
    return [
        SavedCheckpoint(
            saved.checkpoint,
            saved.metadata,
            saved.config["configurable"].get("checkpoint_ns", ""),
            list(saved.pending_writes or []),
        )
        for saved in reversed(history)
    ]


def put_run(saver: BaseCheckpointSaver, run_id: str, checkpoints: list[SavedCheckpoint]) -> None:
    """Put a run's checkpoints into `saver` under `run_id`, each after its parent.

    Oldest first, so that a process killed part-way leaves a run that reads as unfinished (its latest
    checkpoint still has a stage to run), never one that reads as complete with steps missing.
    """
    parent: dict[str, str] = {}
    for saved in checkpoints:
        config: RunnableConfig = {
            "configurable": {"thread_id": run_id, "checkpoint_ns": saved.namespace, **parent}
        }
        stored = saver.put(config, saved.checkpoint, saved.metadata, saved.checkpoint["channel_versions"])
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in saved.writes:
            by_task.setdefault(task_id, []).append((channel, value))
        for task_id, writes in by_task.items():
            saver.put_writes(stored, writes, task_id)
        parent = {"checkpoint_id": stored["configurable"]["checkpoint_id"]}
