"""The Ray engine: a batch's items spread over a pool of Ray actors, each holding the pipeline's models.

An actor (`ray_worker.PipelineWorker`) loads the models once and runs chunks of items through fslm's own
batched runtime. The driver, this process, is the only writer of the run store: it records each item as
started, puts each finished run's checkpoints into the store as the actor returns them, and returns results
in the inputs' order. A worker that dies is restarted by Ray and its chunks are run again; an item reaches the
store once, when its chunk comes back.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fslm.engines.transfer import put_run
from fslm.errors import FslmError
from fslm.pipeline import BatchRuns, Pipeline, RunResult, is_complete
from fslm.spec.run_input import RunInput

EXTRA_HINT = "--engine ray needs the ray extra: pip install 'fslm[ray]'"
# Two chunks per actor: the next chunk's items fill the batch while the last one's slowest items finish.
CHUNKS_PER_ACTOR = 2
# A worker that keeps dying (out of memory, a lost node) stops the batch after this many restarts.
MAX_RESTARTS = 3


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a Ray on this machine; "auto" or "ray://host:port": join one
    actors: int = 1
    cpus_per_actor: int = 1
    gpus_per_actor: float = 0.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise FslmError(EXTRA_HINT) from None
    return ray


class RayPipeline:
    """A Pipeline whose `batch` runs on Ray actors; everything else is the local pipeline's."""

    def __init__(self, pipeline: Pipeline, options: RayOptions):
        self.ray = import_ray()
        self.local = pipeline
        self.spec, self.store, self.runtime = pipeline.spec, pipeline.store, pipeline.runtime
        self.options = options
        self.actors: list = []
        self.started_ray = False

    def batch(
        self,
        inputs: Sequence[RunInput],
        *,
        batch_id: str | None = None,
        resume: bool = False,
        on_done: Callable[[int, RunResult], None] | None = None,
    ) -> list[RunResult]:
        """As `Pipeline.batch`, on the actors. With `resume`, finished items are read back from the store and
        the rest run again from their start (a run part-way in the store is cleared first)."""
        runs = BatchRuns(self.local, inputs, batch_id=batch_id, resume=resume, on_done=on_done)
        pending = []
        with runs.recording():
            for index, run_id in enumerate(runs.run_ids):
                if resume and self._finished(run_id):
                    runs.recorded(index, self.local.result(run_id))
                    continue
                if resume:
                    self.store.saver.delete_thread(run_id)
                runs.start(index)
                pending.append(index)
            for outcome in self._outcomes([(i, runs.run_ids[i], inputs[i]) for i in pending]):
                run_id = runs.run_ids[outcome.index]
                if outcome.error is not None:
                    raise runs.failed(outcome.index, outcome.error)
                put_run(self.store.saver, run_id, outcome.checkpoints)
                result = RunResult(run_id, inputs[outcome.index], outcome.output, outcome.messages)
                runs.done(outcome.index, result)
        return runs.results()

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
        self.local.close()

    def _finished(self, run_id: str) -> bool:
        return is_complete(self.local.graph.get_state({"configurable": {"thread_id": run_id}}))

    def _outcomes(self, items: list[tuple]):
        """Each item's outcome as its chunk comes back from an actor, chunk by chunk."""
        if not items:
            return
        ray = self.ray
        self._start_actors()
        size = max(
            1, min(self.runtime.max_batch_size, math.ceil(len(items) / len(self.actors) / CHUNKS_PER_ACTOR))
        )
        chunks = deque(items[start : start + size] for start in range(0, len(items), size))
        in_flight = {}

        def submit(actor: int) -> None:
            if chunks:
                in_flight[self.actors[actor].run.remote(chunks.popleft())] = actor

        for actor in range(len(self.actors)):
            for _ in range(CHUNKS_PER_ACTOR):
                submit(actor)
        while in_flight:
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ready)
            try:
                outcomes = ray.get(ready)
            except ray.exceptions.RayActorError as error:
                raise FslmError(
                    f"a Ray worker died more than {MAX_RESTARTS} times ({error}); finished items are "
                    "recorded, and the same command with --resume continues the batch"
                ) from None
            submit(actor)
            yield from outcomes

    def _check_resources(self) -> None:
        """Refuse actors the cluster cannot hold at once: the chunks given to one left waiting would wait
        forever."""
        options, available = self.options, self.ray.cluster_resources()
        wanted = {
            "CPU": options.actors * options.cpus_per_actor,
            "GPU": options.actors * options.gpus_per_actor,
        }
        short = [
            f"{amount:g} {name}s (it has {available.get(name, 0):g})"
            for name, amount in wanted.items()
            if amount > available.get(name, 0)
        ]
        if short:
            raise FslmError(
                f"{options.actors} actors need {' and '.join(short)} in the Ray cluster; "
                "use fewer --actors, or fewer --cpus-per-actor or --gpus-per-actor"
            )

    def _start_actors(self) -> None:
        if self.actors:
            return
        ray, options = self.ray, self.options
        if not ray.is_initialized():
            try:
                ray.init(address=options.address, include_dashboard=False, logging_level="warning")
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise FslmError(
                    f"cannot start or join Ray at {options.address or 'this machine'}: {error}"
                ) from None
            self.started_ray = True
        self._check_resources()
        from fslm.engines.ray_worker import PipelineWorker

        worker = ray.remote(PipelineWorker).options(
            num_cpus=options.cpus_per_actor,
            num_gpus=options.gpus_per_actor,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
            max_concurrency=CHUNKS_PER_ACTOR,
        )
        prefixes = (self.runtime.reuse_prefixes, self.runtime.prefix_cache_bytes)
        self.actors = [
            worker.remote(
                self.spec, self.runtime.models, self.runtime.max_batch_size, options.cpus_per_actor, prefixes
            )
            for _ in range(options.actors)
        ]
