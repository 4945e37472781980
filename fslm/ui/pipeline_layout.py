"""The graph of a recorded run's pipeline, as the viewer draws it: stages in layers by distance from the
entry.

Reads the pipeline file the run names (no torch, no LangGraph). The file may have changed since the run or
be gone; `note` then says which graph is shown, or why none is.
"""

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fslm.errors import FslmError
from fslm.spec import END, Case, EdgeSpec, PipelineSpec, load_spec
from fslm.store import RunRecord


@dataclass(frozen=True)
class GraphNode:
    name: str
    layer: int
    model: str | None = None  # None for END (and for a stage that runs no single model)
    adapter: str | None = None


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    conditional: bool
    label: str = ""  # a conditional edge's cases that lead here: "math", "/regex/", "\"yes\"", "otherwise"


@dataclass(frozen=True)
class PipelineGraph:
    available: bool
    note: str = ""  # empty when the graph is the pipeline exactly as it was at the run
    entry: str = ""
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def run_graph(record: RunRecord) -> PipelineGraph:
    """The graph of the pipeline `record` ran, read from its file as it is now."""
    if not Path(record.pipeline).is_file():
        return PipelineGraph(available=False, note=f"graph unavailable: {record.pipeline} no longer exists")
    try:
        spec = load_spec(record.pipeline)
    except FslmError as error:
        return PipelineGraph(
            available=False, note=f"graph unavailable: {record.pipeline} is not valid now: {error}"
        )
    note = (
        ""
        if spec.source_hash == record.pipeline_hash
        else (
            f"{record.pipeline} (or a stage file it uses) changed since this run: this is the graph of the "
            "current file"
        )
    )
    return layered_graph(spec, note)


def layered_graph(spec: PipelineSpec, note: str = "") -> PipelineGraph:
    edges = graph_edges(spec.edges)
    layers = distances_from(spec.entry, edges)
    last = max(layers.values(), default=0)
    unreached = [stage for stage in spec.stages if stage not in layers]
    layers.update({stage: last + 1 for stage in unreached})
    nodes = [
        GraphNode(
            name=name,
            layer=layers[name],
            # Kinds that run no single model (a router, a boost stage) have neither field.
            model=getattr(stage, "model", None),
            adapter=str(adapter) if (adapter := getattr(stage, "adapter", None)) else None,
        )
        for name, stage in spec.stages.items()
    ]
    if any(edge.target == END for edge in edges):
        nodes.append(GraphNode(name=END, layer=max(node.layer for node in nodes) + 1))
    return PipelineGraph(available=True, note=note, entry=spec.entry, nodes=nodes, edges=edges)


def _case_label(case: Case) -> str:
    if case.equals is not None:
        return json.dumps(case.equals, ensure_ascii=False)
    return case.label if case.label is not None else f"/{case.regex}/"


def graph_edges(edges: list[EdgeSpec]) -> list[GraphEdge]:
    """One drawn edge per (source, target, kind); the labels of conditional cases sharing a target are
    joined."""
    labels: dict[tuple[str, str, bool], list[str]] = {}
    for edge in edges:
        for source in edge.sources:
            if edge.is_conditional:
                for case in edge.when:
                    labels.setdefault((source, case.to, True), []).append(_case_label(case))
                labels.setdefault((source, edge.otherwise, True), []).append("otherwise")
            else:
                for target in edge.targets:
                    labels.setdefault((source, target, False), [])
    return [
        GraphEdge(source=source, target=target, conditional=conditional, label=" | ".join(label))
        for (source, target, conditional), label in labels.items()
    ]


def distances_from(entry: str, edges: list[GraphEdge]) -> dict[str, int]:
    """Each stage's number of edges on the shortest path from the entry (END left out)."""
    following: dict[str, list[str]] = {}
    for edge in edges:
        if edge.target != END:
            following.setdefault(edge.source, []).append(edge.target)
    distance = {entry: 0}
    queue = deque([entry])
    while queue:
        stage = queue.popleft()
        for target in following.get(stage, []):
            if target not in distance:
                distance[target] = distance[stage] + 1
                queue.append(target)
    return distance
