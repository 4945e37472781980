"""Compile a PipelineSpec into a LangGraph StateGraph."""

from collections.abc import Callable

from langgraph.graph import END, START, StateGraph

from fslm.graph.state import RunState
from fslm.nodes.stage import Generate, make_stage_node
from fslm.nodes.unite.node import GenerateEnsemble, make_unite_node
from fslm.spec import END as SPEC_END
from fslm.spec import EdgeSpec, PipelineSpec


def _node_name(target: str) -> str:
    return END if target == SPEC_END else target


def _router(edge: EdgeSpec) -> Callable[[RunState], str]:
    (source,) = edge.sources

    def pick(state: RunState) -> str:
        return _node_name(edge.route(state["outputs"][source]))

    pick.__name__ = f"route_{source}"
    return pick


def build_graph(
    spec: PipelineSpec, generate: Generate, generate_ensemble: GenerateEnsemble | None = None
) -> StateGraph:
    """One node per stage, wired as the spec says. `generate` serves every single-model generation request,
    `generate_ensemble` those of ensemble stages."""
    graph = StateGraph(RunState)
    for name, stage in spec.stages.items():
        if stage.ensemble is not None:
            if generate_ensemble is None:
                raise ValueError(f"stage {name!r} is an ensemble, but no generate_ensemble was given")
            graph.add_node(name, make_unite_node(name, stage, generate_ensemble))
        else:
            graph.add_node(name, make_stage_node(name, stage, generate))
    graph.add_edge(START, spec.entry)
    for edge in spec.edges:
        if edge.is_conditional:
            path_map = {_node_name(target): _node_name(target) for target in edge.next_stages()}
            graph.add_conditional_edges(edge.sources[0], _router(edge), path_map)
            continue
        sources = edge.sources if len(edge.sources) > 1 else edge.sources[0]
        for target in edge.targets:
            graph.add_edge(sources, _node_name(target))
    return graph
