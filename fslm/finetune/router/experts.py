"""Running every expert of a router on the training queries, each as a pipeline of its own stage, batched,
recorded in the run store, and read back instead of rerun when the same expert already met the same
queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fslm.graph.state import StageMessage
from fslm.nodes.router.fingerprint import expert_fingerprint
from fslm.pipeline import Pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.spec.models import END, EdgeSpec, PipelineSpec
from fslm.spec.run_input import RunInput
from fslm.store import open_store


@dataclass(frozen=True)
class ExpertAnswers:
    name: str
    fingerprint: str
    messages: list[StageMessage]  # one per query, in query order
    seconds_per_call: float  # mean of the messages' seconds


def expert_pipeline(spec: PipelineSpec, expert: str) -> PipelineSpec:
    """The pipeline made of `expert` alone, with the models and inputs of `spec`."""
    return spec.model_copy(
        update={
            "name": f"{spec.name}.{expert}",
            "stages": {expert: spec.stages[expert]},
            "edges": [EdgeSpec(sources=[expert], targets=[END])],
            "entry": expert,
            "output": None,
        }
    )


def run_experts(
    spec: PipelineSpec,
    experts: list[str],
    inputs: list[RunInput],
    store: Path | None,
    batch_size: int,
    on_done: Callable[[str, int], None],
) -> list[ExpertAnswers]:
    """Each expert's messages on `inputs`; `on_done(expert, count)` after each query."""
    models = {
        name: ModelRef(source=model.source, dtype=model.dtype, revision=model.revision)
        for name, model in spec.models.items()
    }
    run_store = open_store(store)
    answers = []
    with Runtime(models, max_batch_size=batch_size) as runtime:
        for expert in experts:
            single = expert_pipeline(spec, expert)
            fingerprint = expert_fingerprint(spec.stages[expert])
            done = 0

            def count(index: int, result: object, expert: str = expert) -> None:
                nonlocal done
                done += 1
                on_done(expert, done)

            results = Pipeline(single, runtime, run_store).batch(
                inputs, batch_id=_batch_id(single, fingerprint, inputs), resume=True, on_done=count
            )
            messages = [
                next(message for message in reversed(result.messages) if message["stage"] == expert)
                for result in results
            ]
            seconds = sum(message["seconds"] for message in messages) / len(messages)
            answers.append(ExpertAnswers(expert, fingerprint, messages, seconds))
    return answers


def _batch_id(single: PipelineSpec, fingerprint: str, inputs: list[RunInput]) -> str:
    """The same for the same expert (its stage's settings and adapters) on the same queries."""
    digest = hashlib.sha256()
    digest.update(single.stages[single.entry].model_dump_json().encode())
    digest.update(
        json.dumps([single.models[name].model_dump(mode="json") for name in sorted(single.models)]).encode()
    )
    digest.update(fingerprint.encode())
    digest.update(json.dumps(inputs, sort_keys=True).encode())
    return f"router-{single.entry}-{digest.hexdigest()[:16]}"
