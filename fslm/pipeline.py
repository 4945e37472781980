"""The Python entry point: load a pipeline file, run it on text or JSON, read what every stage said.

Over 300 lines on purpose: `Pipeline` is the one object users hold, and its run, stream, batch, resume and
replay share the same recording of runs in the store; split apart, each would reach into the others' state.
"""

import copy
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot, StreamMode

from fslm.errors import FslmError
from fslm.graph import STREAM_TOKENS, RunState, StageMessage, TokenChunk
from fslm.graph.build import build_graph
from fslm.runtime import ModelRef, Runtime
from fslm.runtime.prefix_cache import DEFAULT_PREFIX_CACHE_BYTES
from fslm.spec import PipelineSpec, load_spec
from fslm.spec.run_input import RunInput, input_text
from fslm.store import RunRecord, RunStore, open_store
from fslm.store.inspection import checked_values, damaged_state

# A loop that never takes its exit stops after this many stage runs.
MAX_STAGE_RUNS = 200


@dataclass(frozen=True)
class RunResult:
    run_id: str
    input: RunInput
    output: str
    messages: list[StageMessage]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "input": self.input, "output": self.output, "messages": self.messages}


class Pipeline:
    """A compiled pipeline. `graph` is a plain LangGraph graph; embed it as a subgraph if you like.

    Every run is recorded in `store`: its state in LangGraph's checkpointer, under the run id as thread id,
    and a row in the run index.
    """

    def __init__(self, spec: PipelineSpec, runtime: Runtime, store: RunStore):
        self.spec = spec
        self.runtime = runtime
        self.store = store
        graph = build_graph(spec, runtime.submit)
        self.graph: CompiledStateGraph = graph.compile(checkpointer=store.saver)

    def invoke(self, run_input: RunInput, run_id: str | None = None) -> RunResult:
        """Run the pipeline on `run_input`: text, or a JSON object whose fields the templates read."""
        self.spec.check_input(run_input)
        run_id = self.start_run(run_input, run_id)
        with self._recording(run_id):
            state = self.graph.invoke(_initial_state(run_input), self._config(run_id))
        return self._result(run_id, run_input, state)

    def stream(
        self, run_input: RunInput, run_id: str | None = None, tokens: bool = False
    ) -> Iterator[StageMessage | TokenChunk]:
        """Yield each stage's message as soon as that stage ends; with `tokens`, also its text as it grows."""
        self.spec.check_input(run_input)
        run_id = self.start_run(run_input, run_id)
        config = self._config(run_id)
        config["configurable"][STREAM_TOKENS] = tokens
        modes: list[StreamMode] = ["updates", "custom"] if tokens else ["updates"]
        with self._recording(run_id):
            for part in self.graph.stream(_initial_state(run_input), config, stream_mode=modes, version="v2"):
                if part["type"] == "custom":
                    yield part["data"]
                elif part["type"] == "updates":
                    for node_update in part["data"].values():
                        yield from (node_update or {}).get("log", [])

    def batch(
        self,
        inputs: Sequence[RunInput],
        *,
        batch_id: str | None = None,
        resume: bool = False,
        on_done: Callable[[int, RunResult], None] | None = None,
    ) -> list[RunResult]:
        """Run many inputs concurrently; their stages' generations are batched per base model.

        Item i is recorded as run `{batch_id}-{i}`. With `resume`, items already done are read back from the
        store, interrupted ones continue from their last checkpoint, and only the rest start afresh. Every
        input is checked before any runs.
        """
        runs = BatchRuns(self, inputs, batch_id=batch_id, resume=resume, on_done=on_done)
        pending, states = [], []
        with runs.recording():
            for index, (run_id, run_input) in enumerate(zip(runs.run_ids, inputs, strict=True)):
                snapshot = self.graph.get_state(self._config(run_id)) if resume else None
                if snapshot is not None and is_complete(snapshot):
                    runs.recorded(index, self._result(run_id, run_input, snapshot.values))
                    continue
                runs.start(index)
                pending.append(index)
                # A process killed as it recorded the input may leave a checkpoint with nothing to run next.
                part_way = snapshot is not None and bool(snapshot.tasks)
                states.append(None if part_way else _initial_state(run_input))
            configs: list[RunnableConfig] = [
                {**self._config(runs.run_ids[i]), "max_concurrency": self.runtime.max_batch_size}
                for i in pending
            ]
            with _loop_guard():
                for position, state in self.graph.batch_as_completed(states, configs, return_exceptions=True):
                    index = pending[position]
                    if isinstance(state, BaseException):
                        refusal = runs.failed(index, str(state))
                        if isinstance(state, FslmError):  # a stage refused this item's input: say which
                            raise refusal from state
                        raise state
                    runs.done(index, self._result(runs.run_ids[index], inputs[index], state))
        return runs.results()

    def replay(self, run_id: str, from_stage: str, edits: dict[str, str] | None = None) -> RunResult:
        """Re-run `from_stage` and the stages after it, from run `run_id`'s checkpoint, as a new run.

        `edits` replaces recorded stage messages first (stage name → text). An edit of `from_stage` itself
        stands in for its output: it is not re-run, and the stages after it read the edited text.
        """
        parent = self.store.index.find(run_id)
        edits = dict(edits or {})
        if parent.pipeline_hash != self.spec.source_hash:
            raise FslmError(
                f"run {parent.run_id} was recorded with another version of {parent.pipeline}; the file (or a "
                "stage file it uses) changed since, so a replay would not continue the same pipeline"
            )
        before = self._checkpoint_before(parent, from_stage)
        values = before.checkpoint["channel_values"]
        unknown = [stage for stage in edits if stage != from_stage and stage not in values.get("outputs", {})]
        if unknown:
            ran = ", ".join(values.get("outputs", {})) or "none"
            raise FslmError(
                f"--set names {', '.join(unknown)}, which had not run before '{from_stage}' in run "
                f"{parent.run_id}; stages that had: {ran}"
            )
        checkpoint = copy.deepcopy(before.checkpoint)
        log = checkpoint["channel_values"]["log"]
        for stage, text in edits.items():
            if stage != from_stage:
                checkpoint["channel_values"]["outputs"][stage] = text
                _edit_last_message(log, stage, text)

        new_id = new_run_id()
        parent_input = values["input"]  # as given, a structured input too (the index holds it as text)
        self.start_run(parent_input, new_id, parent_id=parent.run_id, replay_from=from_stage)
        config = self.store.saver.put(
            {"configurable": {"thread_id": new_id, "checkpoint_ns": ""}},
            checkpoint,
            # langgraph keeps metadata keys its TypedDict does not list
            {**before.metadata, "source": "fork", "parent_run": parent.run_id},  # type: ignore[typeddict-unknown-key]
            checkpoint["channel_versions"],
        )
        with self._recording(new_id):
            if from_stage in edits:
                message = self._recorded_message(parent.run_id, from_stage)
                _set_edited_text(message, edits[from_stage])
                # As if the stage had written the edit: conditional edges route on the edited text.
                config = self.graph.update_state(
                    config, {"outputs": {from_stage: edits[from_stage]}, "log": [message]}, as_node=from_stage
                )
            state = self.graph.invoke(None, {**self._config(new_id), **config})
        return self._result(new_id, parent_input, state)

    def result(self, run_id: str) -> RunResult:
        """The recorded result of a run."""
        state = self._recorded_state(run_id)
        if state is None:
            raise FslmError(f"no run '{run_id}' in the store")
        return self._result(run_id, state["input"], state)

    def close(self) -> None:
        self.runtime.close()

    def _config(self, run_id: str) -> RunnableConfig:
        return {
            "configurable": {"thread_id": run_id},
            "metadata": {"pipeline": str(self.spec.path), "pipeline_hash": self.spec.source_hash},
            "recursion_limit": MAX_STAGE_RUNS,
        }

    def start_run(
        self,
        run_input: RunInput,
        run_id: str | None,
        *,
        parent_id: str | None = None,
        replay_from: str | None = None,
        batch_id: str | None = None,
    ) -> str:
        """Record run `run_id` (a new id if None) as running in the index; its id. Engines that run items
        elsewhere (fslm.engines) record them here as the local engine does."""
        run_id = run_id or new_run_id()
        self.store.index.start(
            RunRecord(
                run_id=run_id,
                pipeline=str(self.spec.path),
                pipeline_name=self.spec.name,
                pipeline_hash=self.spec.source_hash,
                input=input_text(run_input),
                status="running",
                started=time.time(),
                parent_id=parent_id,
                replay_from=replay_from,
                batch_id=batch_id,
            )
        )
        return run_id

    @contextmanager
    def _recording(self, run_id: str) -> Iterator[None]:
        """Mark the run done, failed or interrupted in the index, whichever way the block ends."""
        try:
            with _loop_guard():
                yield
        except (KeyboardInterrupt, GeneratorExit):
            self.store.index.finish(run_id, "interrupted")
            raise
        except BaseException as error:
            self.store.index.finish(run_id, "failed", str(error))
            raise
        self.store.index.finish(run_id, "done")

    def _recorded_state(self, run_id: str) -> dict[str, Any] | None:
        snapshot = self.graph.get_state({"configurable": {"thread_id": run_id}})
        return snapshot.values or None

    def _recorded_log(self, run_id: str) -> list[StageMessage]:
        return (self._recorded_state(run_id) or {}).get("log", [])

    def _checkpoint_before(self, run: RunRecord, stage: str):
        """The checkpoint at which `stage` was about to run for the first time in `run`. Every checkpoint of
        the run is checked as it is read: a damaged one is DamagedStoreError, not a failure further on."""
        config: RunnableConfig = {"configurable": {"thread_id": run.run_id}}
        try:
            history = list(self.graph.get_state_history(config))
        except Exception as error:  # LangGraph's decoders raise many kinds of error on bytes not theirs
            raise damaged_state(self.store, run, f"{type(error).__name__}: {error}") from error
        for snapshot in history:
            checked_values(self.store, run, snapshot.values)
        for snapshot in reversed(history):
            if any(task.name == stage for task in snapshot.tasks):
                return self.store.saver.get_tuple(snapshot.config)
        ran = [message["stage"] for message in self._recorded_log(run.run_id)]
        raise FslmError(f"stage '{stage}' did not run in run {run.run_id}; stages that ran: {', '.join(ran)}")

    def _recorded_message(self, run_id: str, stage: str) -> StageMessage:
        log = self._recorded_log(run_id)
        return copy.copy(next(message for message in reversed(log) if message["stage"] == stage))

    def _result(self, run_id: str, run_input: RunInput, state: Mapping[str, Any]) -> RunResult:
        messages = list(state["log"])
        if self.spec.output is not None:
            output = state["outputs"].get(self.spec.output, "")
        else:
            output = messages[-1]["text"] if messages else ""
        return RunResult(run_id=run_id, input=run_input, output=output, messages=messages)


class BatchRuns:
    """A batch's bookkeeping in the run store, the same whichever engine runs its items (this process, or
    the Ray actors of fslm.engines): item i is run `{batch_id}-{i:05d}`, each item is recorded as it starts
    and ends, and the runs still going when the batch stops early (an error, Ctrl-C) are marked interrupted.
    Every input is checked before any runs."""

    def __init__(
        self,
        pipeline: Pipeline,
        inputs: Sequence[RunInput],
        *,
        batch_id: str | None,
        resume: bool,
        on_done: Callable[[int, RunResult], None] | None,
    ) -> None:
        if resume and batch_id is None:
            raise ValueError("resume needs the batch_id of the batch to continue")
        for number, run_input in enumerate(inputs, start=1):
            pipeline.spec.check_input(run_input, f"item {number}: ")
        self.batch_id = batch_id or new_run_id()
        self.run_ids = [f"{self.batch_id}-{index:05d}" for index in range(len(inputs))]
        self._pipeline = pipeline
        self._inputs = inputs
        self._on_done = on_done
        self._results: list[RunResult | None] = [None] * len(inputs)
        self._unfinished: set[str] = set()

    def recorded(self, index: int, result: RunResult) -> None:
        """Item `index` is complete in the store already; it may have finished after its process was told
        to stop, so its status is corrected to done."""
        self._pipeline.store.index.mark(self.run_ids[index], "done")
        self._deliver(index, result)

    def start(self, index: int) -> None:
        run_id = self.run_ids[index]
        self._pipeline.start_run(self._inputs[index], run_id, batch_id=self.batch_id)
        self._unfinished.add(run_id)

    def done(self, index: int, result: RunResult) -> None:
        self._pipeline.store.index.finish(self.run_ids[index], "done")
        self._unfinished.discard(self.run_ids[index])
        self._deliver(index, result)

    def failed(self, index: int, error: str) -> FslmError:
        """Record item `index` as failed; the error that names the item, for the caller to raise."""
        run_id = self.run_ids[index]
        self._pipeline.store.index.finish(run_id, "failed", error)
        self._unfinished.discard(run_id)
        return FslmError(f"item {index + 1} (run {run_id}): {error}")

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Mark the runs started and not ended in the block interrupted, however the block ends."""
        try:
            yield
        finally:
            for run_id in self._unfinished:
                self._pipeline.store.index.finish(run_id, "interrupted")

    def results(self) -> list[RunResult]:
        """Every item's result, in the inputs' order: asked once every item is done (a failure raises)."""
        results = [result for result in self._results if result is not None]
        assert len(results) == len(self._results), "the batch ended with items not done"
        return results

    def _deliver(self, index: int, result: RunResult) -> None:
        self._results[index] = result
        if self._on_done:
            self._on_done(index, result)


def is_complete(snapshot: StateSnapshot) -> bool:
    """Whether a run's latest state in the store has run every stage. A stage that finished just before its
    process died leaves pending writes, not a new checkpoint: LangGraph then reports it in `tasks` but not in
    `next`, so only `tasks` tells a run is complete."""
    return bool(snapshot.values.get("log")) and not snapshot.tasks


def _edit_last_message(log: list[StageMessage], stage: str, text: str) -> None:
    for message in reversed(log):
        if message["stage"] == stage:
            _set_edited_text(message, text)
            return


def _set_edited_text(message: StageMessage, text: str) -> None:
    """The user's text in place of the stage's; the model's token log-probabilities were of its own text, so
    they go."""
    message["text"], message["edited"] = text, True
    cast(dict, message).pop("logprobs", None)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _initial_state(run_input: RunInput) -> RunState:
    return RunState(input=run_input, outputs={}, log=[])


@contextmanager
def _loop_guard() -> Iterator[None]:
    """Turn LangGraph's recursion limit into a message users can act on."""
    try:
        yield
    except GraphRecursionError as error:
        raise FslmError(
            f"the run went through more than {MAX_STAGE_RUNS} stage steps; "
            "a loop in the pipeline never took its exit"
        ) from error


def load_pipeline(
    path: str | Path | PipelineSpec,
    *,
    store: str | Path | RunStore | None = None,
    runtime: Runtime | None = None,
    max_batch_size: int = 32,
    reuse_prefixes: bool = True,
    prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
) -> Pipeline:
    """Validate the pipeline file, then compile it. Models load lazily, on their first generation.

    `path` may be a spec `load_spec` already returned. `store` is a run-store path (default: $FSLM_STORE or
    the per-user store), ":memory:", or an open RunStore. Without a `runtime`, one is made with
    `max_batch_size`, `reuse_prefixes` and `prefix_cache_bytes` (see `Runtime`).
    """
    spec = path if isinstance(path, PipelineSpec) else load_spec(path)
    if runtime is None:
        models = {
            name: ModelRef(
                source=model.source, dtype=model.dtype, revision=model.revision, device=model.device
            )
            for name, model in spec.models.items()
        }
        runtime = Runtime(
            models,
            max_batch_size=max_batch_size,
            reuse_prefixes=reuse_prefixes,
            prefix_cache_bytes=prefix_cache_bytes,
        )
    return Pipeline(spec, runtime, store if isinstance(store, RunStore) else open_store(store))


__all__ = ["Pipeline", "RunResult", "load_pipeline"]
