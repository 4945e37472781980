"""One Ray actor: the pipeline's models loaded once, serving chunks of items through fslm's batched runtime.

The actor records each run in a store in its own memory, and hands back the finished run with its
checkpoints; the driver puts it into the run store and forgets nothing. The actor's store keeps no run once
it is handed back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fslm.engines.transfer import SavedCheckpoint, take_run
from fslm.errors import FslmError
from fslm.graph import StageMessage
from fslm.runtime import ModelRef
from fslm.spec import PipelineSpec
from fslm.spec.run_input import RunInput


@dataclass(frozen=True)
class ItemOutcome:
    index: int  # the item's place in the batch
    output: str
    messages: list[StageMessage]
    checkpoints: list[SavedCheckpoint]
    error: str | None = None  # a user error (e.g. a stage refused the input): the run failed


class PipelineWorker:
    """Wrapped by `ray.remote` in fslm.engines.ray_engine; plain here, so it imports without Ray."""

    def __init__(
        self,
        spec: PipelineSpec,
        models: dict[str, ModelRef],
        max_batch_size: int,
        threads: int,
        prefixes: tuple[bool, int],
    ):
        """`models` and `prefixes` (reuse_prefixes, prefix_cache_bytes) as the driver's runtime holds them: a
        teacher stands in for the spec's own models."""
        import torch

        from fslm.pipeline import Pipeline
        from fslm.runtime import Runtime
        from fslm.store import open_store

        torch.set_num_threads(threads)
        reuse_prefixes, prefix_cache_bytes = prefixes
        runtime = Runtime(
            models,
            max_batch_size=max_batch_size,
            reuse_prefixes=reuse_prefixes,
            prefix_cache_bytes=prefix_cache_bytes,
        )
        self.pipeline = Pipeline(spec, runtime, open_store(":memory:"))
        # Every item of every chunk in flight runs on its own thread; the runtime batches their generations.
        self.threads = ThreadPoolExecutor(max_workers=max_batch_size)

    def run(self, chunk: list[tuple[int, str, RunInput]]) -> list[ItemOutcome]:
        """Run each (index, run id, input) of `chunk`; outcomes in the chunk's order."""
        return list(self.threads.map(lambda item: self._run_one(*item), chunk))

    def _run_one(self, index: int, run_id: str, run_input: RunInput) -> ItemOutcome:
        saver = self.pipeline.store.saver
        try:
            result = self.pipeline.invoke(run_input, run_id=run_id)
            outcome = ItemOutcome(index, result.output, result.messages, take_run(saver, run_id))
        except FslmError as error:
            outcome = ItemOutcome(index, "", [], [], error=str(error))
        saver.delete_thread(run_id)
        return outcome
