"""The `router` graph node: render the query, choose an expert, run that expert's own node, record both.

The expert runs through its kind's own node (a stage, a choice stage, an ensemble), so its message is exactly
what it would record as a stage of its own; the router's message follows it with the choice. `rank` runs
every expert, at once, so that their requests are batched together.
"""

from __future__ import annotations

import contextvars
import inspect
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.runnables import RunnableConfig

from fslm.graph.state import RunState, StageMessage
from fslm.nodes.choices.decision import argmax
from fslm.nodes.choices.node import ChoicesMessage
from fslm.nodes.prompt import compile_prompt, render_prompt, template_variables
from fslm.nodes.router.decision import (
    cost_aware_scores,
    learned_choice,
    normalised,
    one_hot,
    random_choice,
)
from fslm.nodes.router.record import RouterRecord
from fslm.nodes.router.spec import RouterSpec, RouterStageSpec
from fslm.runtime.router import RouteRequest
from fslm.runtime.router.checkpoint import read_router_config
from fslm.spec.kinds import node_factory
from fslm.spec.models import StageSpecBase


class RoutedMessage(StageMessage):
    router: RouterRecord


def make_router_node(
    name: str, stage: RouterStageSpec, submit: Callable[[Any], Any], *, stages: Mapping[str, StageSpecBase]
) -> Callable[[RunState, RunnableConfig], dict]:
    template = compile_prompt(stage)
    router = stage.router
    experts = {
        expert: node_factory(stages[expert])(expert, stages[expert], submit) for expert in router.experts
    }
    costs = expert_costs(router)

    def run_expert(expert: str, state: RunState, config: RunnableConfig) -> dict:
        node = experts[expert]
        return node(state, config) if len(inspect.signature(node).parameters) == 2 else node(state)

    def run_router(state: RunState, config: RunnableConfig) -> dict:
        query = render_prompt(name, stage, template, template_variables(state))
        if router.method == "rank":
            updates = _run_all(router.experts, run_expert, state, config)
            started = time.perf_counter()
            confidences = [_confidence(update["log"][-1]) for update in updates]
            index = argmax(confidences)
            record = _record(
                router, normalised(confidences), confidences, index, time.perf_counter() - started
            )
            return _update(name, query, updates, index, record)
        started = time.perf_counter()
        index, probabilities, scores = _choose(router, query, costs, submit)
        record = _record(router, probabilities, scores, index, time.perf_counter() - started)
        return _update(name, query, [run_expert(router.experts[index], state, config)], 0, record)

    run_router.__name__ = f"router_{name}"
    return run_router


def expert_costs(router: RouterSpec) -> list[float]:
    """Each expert's cost: as the stage sets it, else the seconds per call measured in training (1 each for
    a router without a checkpoint)."""
    if router.costs is not None and set(router.costs) == set(router.experts):
        return [router.costs[expert] for expert in router.experts]
    measured = {expert: 1.0 for expert in router.experts}
    if router.checkpoint is not None:
        measured = {
            entry.name: entry.seconds_per_call for entry in read_router_config(router.checkpoint).experts
        }
    return [(router.costs or {}).get(expert, measured[expert]) for expert in router.experts]


def _choose(
    router: RouterSpec, query: str, costs: list[float], submit: Callable[[Any], Any]
) -> tuple[int, list[float], list[float]]:
    count = len(router.experts)
    if router.method == "fixed":
        assert router.fixed is not None  # validated
        index = router.experts.index(router.fixed)
        return index, one_hot(count, index), one_hot(count, index)
    if router.method == "random":
        uniform = [1 / count] * count
        return random_choice(count, router.seed, query), uniform, uniform
    assert router.checkpoint is not None  # validated: learned has one
    probabilities = list(submit(RouteRequest(str(router.checkpoint), query)).probabilities)
    scores = cost_aware_scores(probabilities, costs, router.cost_weight)
    return learned_choice(probabilities, costs, router.cost_weight), probabilities, scores


def _run_all(
    experts: list[str],
    run_expert: Callable[[str, RunState, RunnableConfig], dict],
    state: RunState,
    config: RunnableConfig,
) -> list[dict]:
    """Every expert's update, run concurrently (each thread in a copy of this run's context)."""
    with ThreadPoolExecutor(len(experts), thread_name_prefix="fslm-rank") as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, run_expert, expert, state, config)
            for expert in experts
        ]
        return [future.result() for future in futures]


def _confidence(message: ChoicesMessage) -> float:
    """A choice expert's confidence: the probability it gives the option it picked."""
    record = message["choices"]
    return record["probabilities"][record["chosen"]]


def _record(
    router: RouterSpec, probabilities: list[float], scores: list[float], index: int, seconds: float
) -> RouterRecord:
    return RouterRecord(
        method=router.method,
        experts=list(router.experts),
        probabilities=probabilities,
        scores=scores,
        chosen=router.experts[index],
        calls=len(router.experts) if router.method == "rank" else 1,
        seconds=round(seconds, 6),
    )


def _update(name: str, query: str, updates: list[dict], index: int, record: RouterRecord) -> dict:
    """The experts' messages, then the router's, whose text is the chosen expert's."""
    chosen: StageMessage = updates[index]["log"][-1]
    message = RoutedMessage(
        stage=name,
        text=chosen["text"],
        model=chosen["model"],
        adapter=chosen["adapter"],
        prompt=query,
        prompt_tokens=0,
        completion_tokens=0,
        seconds=record["seconds"],
        router=record,
    )
    log = [entry for update in updates for entry in update["log"]]
    return {"outputs": {name: chosen["text"]}, "log": [*log, message]}
