"""The Python entry point: load a pipeline file, run it on text, read what every stage said."""

import uuid
from contextlib import contextmanager
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph

from fslm.errors import FslmError
from fslm.graph import RunState, StageMessage, build_graph
from fslm.runtime import ModelRef, Runtime
from fslm.spec import PipelineSpec, load_spec
from fslm.store import open_store

# A loop that never takes its exit stops after this many stage runs.
MAX_STAGE_RUNS = 200


@dataclass(frozen=True)
class RunResult:
    run_id: str
    input: str
    output: str
    messages: list[StageMessage]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "input": self.input, "output": self.output, "messages": self.messages}


class Pipeline:
    """A compiled pipeline. `graph` is a plain LangGraph graph; embed it as a subgraph if you like."""

    def __init__(self, spec: PipelineSpec, runtime: Runtime, store: BaseCheckpointSaver):
        self.spec = spec
        self.runtime = runtime
        self.store = store
        self.graph: CompiledStateGraph = build_graph(spec, runtime.submit).compile(checkpointer=store)

    def _config(self, run_id: str) -> dict:
        return {
            "configurable": {"thread_id": run_id},
            "metadata": {
                "pipeline": str(self.spec.path),
                "pipeline_name": self.spec.name,
                "pipeline_hash": self.spec.source_hash,
            },
            "recursion_limit": MAX_STAGE_RUNS,
        }

    def _result(self, run_id: str, text: str, state: RunState) -> RunResult:
        messages = list(state["log"])
        if self.spec.output is not None:
            output = state["outputs"].get(self.spec.output, "")
        else:
            output = messages[-1]["text"] if messages else ""
        return RunResult(run_id=run_id, input=text, output=output, messages=messages)

    def invoke(self, text: str, run_id: str | None = None) -> RunResult:
        run_id = run_id or new_run_id()
        with _user_errors():
            state = self.graph.invoke(_initial_state(text), self._config(run_id))
        return self._result(run_id, text, state)

    def stream(self, text: str, run_id: str | None = None) -> Iterator[StageMessage]:
        """Yield each stage's message as soon as that stage ends."""
        run_id = run_id or new_run_id()
        with _user_errors():
            for update in self.graph.stream(_initial_state(text), self._config(run_id), stream_mode="updates"):
                for node_update in update.values():
                    yield from (node_update or {}).get("log", [])

    def result(self, run_id: str) -> RunResult:
        """The recorded result of a finished run."""
        snapshot = self.graph.get_state({"configurable": {"thread_id": run_id}})
        if not snapshot.values:
            raise FslmError(f"no run with id '{run_id}' in the store")
        return self._result(run_id, snapshot.values["input"], snapshot.values)

    def batch(
        self,
        texts: Sequence[str],
        run_ids: Sequence[str] | None = None,
        on_done: Callable[[int, RunResult], None] | None = None,
    ) -> list[RunResult]:
        """Run many inputs concurrently; their stages' generations are batched per base model."""
        run_ids = list(run_ids) if run_ids is not None else [new_run_id() for _ in texts]
        configs = [
            {**self._config(run_id), "max_concurrency": self.runtime.max_batch_size} for run_id in run_ids
        ]
        results: list[RunResult | None] = [None] * len(texts)
        with _user_errors():
            completed = self.graph.batch_as_completed([_initial_state(t) for t in texts], configs)
            for index, state in completed:
                results[index] = self._result(run_ids[index], texts[index], state)
                if on_done:
                    on_done(index, results[index])
        return results

    def close(self) -> None:
        self.runtime.close()


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _initial_state(text: str) -> RunState:
    return RunState(input=text, outputs={}, log=[])


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn LangGraph's loop guard into a message users can act on."""
    try:
        yield
    except GraphRecursionError as error:
        raise FslmError(
            f"the run went through more than {MAX_STAGE_RUNS} stage steps; "
            "a loop in the pipeline never took its exit"
        ) from error


def load_pipeline(
    path: str | Path,
    *,
    store: str | Path | BaseCheckpointSaver | None = None,
    runtime: Runtime | None = None,
    max_batch_size: int = 32,
) -> Pipeline:
    """Validate the pipeline file, then compile it. Models load lazily, on their first generation.

    `store` is a run-store path (default: the per-user store), ":memory:", or a LangGraph checkpointer.
    """
    spec = load_spec(path)
    if runtime is None:
        models = {
            name: ModelRef(source=model.source, dtype=model.dtype, revision=model.revision)
            for name, model in spec.models.items()
        }
        runtime = Runtime(models, max_batch_size=max_batch_size)
    saver = store if isinstance(store, BaseCheckpointSaver) else open_store(store)
    return Pipeline(spec, runtime, saver)


__all__ = ["Pipeline", "RunResult", "load_pipeline", "PipelineSpec"]
