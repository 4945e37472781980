"""Compile a PipelineSpec into a LangGraph StateGraph."""

import re
import string
from collections.abc import Callable

from langgraph.graph import END, START, StateGraph

from fslm.graph.state import RunState
from fslm.nodes.stage import Generate, make_stage_node
from fslm.spec import Case, EdgeSpec, PipelineSpec


def first_word(text: str) -> str:
    words = text.strip().split()
    return words[0].strip(string.punctuation).lower() if words else ""


def route(edge: EdgeSpec, text: str) -> str:
    """The target a conditional edge picks for a stage's output text: first matching case wins."""
    for case in edge.when:
        if _matches(case, text):
            return case.to
    return edge.otherwise


def _matches(case: Case, text: str) -> bool:
    if case.label is not None:
        return first_word(text) == case.label.lower()
    return re.search(case.regex, text) is not None


def _node_name(target: str) -> str:
    return END if target == "END" else target


def _router(edge: EdgeSpec) -> Callable[[RunState], str]:
    (source,) = edge.sources

    def pick(state: RunState) -> str:
        return _node_name(route(edge, state["outputs"][source]))

    pick.__name__ = f"route_{source}"
    return pick


def build_graph(spec: PipelineSpec, generate: Generate) -> StateGraph:
    """One node per stage, wired as the spec says. `generate` serves every generation request."""
    graph = StateGraph(RunState)
    for name, stage in spec.stages.items():
        graph.add_node(name, make_stage_node(name, stage, generate))
    graph.add_edge(START, spec.entry)
    has_exit = set()
    for edge in spec.edges:
        has_exit.update(edge.sources)
        if edge.when:
            targets = {case.to for case in edge.when} | {edge.otherwise}
            graph.add_conditional_edges(
                edge.sources[0], _router(edge), {_node_name(t): _node_name(t) for t in targets}
            )
            continue
        for target in edge.targets:
            sources = edge.sources if len(edge.sources) > 1 else edge.sources[0]
            graph.add_edge(sources, _node_name(target))
    for name in spec.stages:
        if name not in has_exit:
            graph.add_edge(name, END)
    return graph
