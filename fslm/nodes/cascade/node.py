"""The `cascade` graph node: run the steps' own nodes one after another, cheapest first, and stop at the
first whose confidence reaches its threshold. Steps after it never run, so they cost nothing.

Each step runs through its kind's own node, so its message is exactly what it would record as a stage of its
own; the cascade's message follows them with the confidences and where it stopped.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig

from fslm.graph.state import RunState, StageMessage
from fslm.nodes.cascade.confidence import step_confidence
from fslm.nodes.cascade.record import CascadeRecord, CascadeStep
from fslm.nodes.cascade.spec import CascadeStageSpec
from fslm.spec.kinds import node_factory
from fslm.spec.models import StageSpecBase


class CascadeMessage(StageMessage):
    cascade: CascadeRecord


def make_cascade_node(
    name: str, stage: CascadeStageSpec, submit: Callable[[Any], Any], *, stages: Mapping[str, StageSpecBase]
) -> Callable[[RunState, RunnableConfig], dict]:
    cascade = stage.cascade
    nodes = {step: node_factory(stages[step])(step, stages[step], submit) for step in cascade.stages}
    thresholds: list[float | None] = [*cascade.thresholds, None]

    def run_step(step: str, state: RunState, config: RunnableConfig) -> dict:
        node = nodes[step]
        return node(state, config) if len(inspect.signature(node).parameters) == 2 else node(state)

    def run_cascade(state: RunState, config: RunnableConfig) -> dict:
        started = time.perf_counter()
        log: list[StageMessage] = []
        steps: list[CascadeStep] = []
        for step, threshold in zip(cascade.stages, thresholds, strict=True):
            step_started = time.perf_counter()
            update = run_step(step, state, config)
            seconds = round(time.perf_counter() - step_started, 6)
            log.extend(update["log"])
            confidence = step_confidence(cascade.confidence, update["log"][-1])
            steps.append(CascadeStep(stage=step, confidence=confidence, threshold=threshold, seconds=seconds))
            if threshold is None or confidence >= threshold:
                break
        answer = log[-1]
        record = CascadeRecord(
            confidence=cascade.confidence, stages=list(cascade.stages), steps=steps, answered=answer["stage"]
        )
        own_seconds = time.perf_counter() - started - sum(step["seconds"] for step in steps)
        message = CascadeMessage(
            stage=name,
            text=answer["text"],
            model=answer["model"],
            adapter=answer["adapter"],
            prompt=answer["prompt"],
            prompt_tokens=0,
            completion_tokens=0,
            seconds=round(max(own_seconds, 0.0), 6),
            cascade=record,
        )
        return {"outputs": {name: answer["text"]}, "log": [*log, message]}

    run_cascade.__name__ = f"cascade_{name}"
    return run_cascade
