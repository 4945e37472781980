"""Compile a PipelineSpec into a LangGraph StateGraph."""

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph

from fslm.graph.state import RunState
from fslm.spec import END as SPEC_END
from fslm.spec import EdgeSpec, PipelineSpec, StageSpecBase
from fslm.spec.kinds import inner_stages, kind_of, node_factory

# Hands one request of any kind to the runtime and blocks for its result (`fslm.runtime.Runtime.submit`).
Submit = Callable[[Any], Any]


def _node_name(target: str) -> str:
    return END if target == SPEC_END else target


def _router(edge: EdgeSpec) -> Callable[[RunState], str]:
    (source,) = edge.sources

    def pick(state: RunState) -> str:
        return _node_name(edge.route(state["outputs"][source]))

    pick.__name__ = f"route_{source}"
    return pick


def make_node(
    name: str, stage: StageSpecBase, submit: Submit, stages: Mapping[str, StageSpecBase]
) -> Callable:
    """The graph node of stage `name`; a kind that runs other stages inside its node also gets `stages`."""
    if kind_of(stage).inner_stages is None:
        return node_factory(stage)(name, stage, submit)
    return node_factory(stage)(name, stage, submit, stages=stages)


def build_graph(spec: PipelineSpec, submit: Submit) -> StateGraph:
    """One node per stage, made by its kind's node factory, wired as the spec says. `submit` serves every
    request the nodes make."""
    graph = StateGraph(RunState)
    inner = inner_stages(spec.stages)  # run inside another stage's node, so no node of their own
    for name, stage in spec.stages.items():
        if name not in inner:
            graph.add_node(name, make_node(name, stage, submit, spec.stages))
    graph.add_edge(START, spec.entry)
    for edge in spec.edges:
        if edge.is_conditional:
            path_map: dict[Hashable, str] = {
                _node_name(target): _node_name(target) for target in edge.next_stages()
            }
            graph.add_conditional_edges(edge.sources[0], _router(edge), path_map)
            continue
        sources = edge.sources if len(edge.sources) > 1 else edge.sources[0]
        for target in edge.targets:
            graph.add_edge(sources, _node_name(target))
    return graph
