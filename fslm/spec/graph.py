"""Questions about the wiring of stages: what runs before what, what is reachable, which loops never end.

Functions take plain stage names and edges so validation can ask them before a `PipelineSpec` exists.
Targets named END (or unknown names) are ignored: they lead out of the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from fslm.spec.models import END, EdgeSpec, PipelineSpec


def sequential_edges(stages: Sequence[str]) -> list[EdgeSpec]:
    """The wiring of a file without `edges:`: each stage to the next, the last one to END."""
    chain = [*stages, END]
    return [EdgeSpec(sources=[before], targets=[after]) for before, after in pairwise(chain)]


def with_end_edges(stages: Sequence[str], edges: Sequence[EdgeSpec]) -> list[EdgeSpec]:
    """`edges` plus an explicit edge to END from every stage that has no outgoing edge."""
    leaving = {source for edge in edges for source in edge.sources}
    return [*edges, *(EdgeSpec(sources=[stage], targets=[END]) for stage in stages if stage not in leaving)]


def successors(stages: Sequence[str], edges: Sequence[EdgeSpec]) -> dict[str, list[str]]:
    """Stage → the stages any of its edges can lead to (fan-in edges count for each of their sources)."""
    known = set(stages)
    result: dict[str, list[str]] = {stage: [] for stage in stages}
    for edge in edges:
        for source in edge.sources:
            if source in known:
                for target in edge.next_stages():
                    if target in known and target not in result[source]:
                        result[source].append(target)
    return result


def reachable_stages(stages: Sequence[str], entry: str, edges: Sequence[EdgeSpec]) -> set[str]:
    """Stages that can run: the entry, and targets of edges whose sources can all run (fan-in waits for all)."""
    known = set(stages)
    reached = {entry} if entry in known else set()
    changed = True
    while changed:
        changed = False
        for edge in edges:
            if all(source in reached for source in edge.sources):
                for target in edge.next_stages():
                    if target in known and target not in reached:
                        reached.add(target)
                        changed = True
    return reached


def guaranteed_before(stages: Sequence[str], entry: str, edges: Sequence[EdgeSpec]) -> dict[str, set[str]]:
    """For each reachable stage, the stages that have run before it on every path from the entry.

    A fixed point in the manner of dominators: an edge into a stage brings its sources and everything before
    them (the union over a fan-in edge's sources, since it waits for all); separate incoming edges intersect.
    """
    reached = reachable_stages(stages, entry, edges)
    order = [stage for stage in stages if stage in reached]
    before: dict[str, set[str] | None] = {stage: None for stage in order}  # None: not yet known (all stages)
    before[entry] = set()
    changed = True
    while changed:
        changed = False
        for stage in order:
            if stage == entry:
                continue
            arriving = _arriving_sets(stage, edges, before)
            if arriving is not None and arriving != before[stage]:
                before[stage] = arriving
                changed = True
    return {stage: (known_before or set()) - {stage} for stage, known_before in before.items()}


def _arriving_sets(
    stage: str, edges: Sequence[EdgeSpec], before: dict[str, set[str] | None]
) -> set[str] | None:
    result: set[str] | None = None
    for edge in edges:
        if stage not in edge.next_stages() or not all(source in before for source in edge.sources):
            continue
        if any(before[source] is None for source in edge.sources):
            continue  # unknown yet means "everything", which leaves the intersection unchanged
        brought = set().union(*((before[source] or set()) | {source} for source in edge.sources))
        result = brought if result is None else result & brought
    return result


def cycles_without_exit(stages: Sequence[str], edges: Sequence[EdgeSpec]) -> list[list[str]]:
    """Loops that can never be left: strongly connected stages (or a self-loop) with no edge leading out."""
    following = successors(stages, edges)
    leads_to_end = {source for edge in edges if END in edge.next_stages() for source in edge.sources}
    trapped: list[list[str]] = []
    for component in _strongly_connected(stages, following):
        members = set(component)
        is_loop = len(component) > 1 or component[0] in following[component[0]]
        if not is_loop:
            continue
        leaves = any(
            stage in leads_to_end or any(target not in members for target in following[stage])
            for stage in component
        )
        if not leaves:
            trapped.append(component)
    return trapped


def _strongly_connected(stages: Sequence[str], following: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); each component's stages in file order."""
    position = {stage: index for index, stage in enumerate(stages)}
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in stages:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            stage, next_child = work.pop()
            if next_child == 0:
                index_of[stage] = low[stage] = len(index_of)
                stack.append(stage)
                on_stack.add(stage)
            children = following[stage]
            if next_child < len(children):
                work.append((stage, next_child + 1))
                child = children[next_child]
                if child not in index_of:
                    work.append((child, 0))
                elif child in on_stack:
                    low[stage] = min(low[stage], index_of[child])
                continue
            if low[stage] == index_of[stage]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == stage:
                        break
                components.append(sorted(component, key=position.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[stage])
    return components


def stages_after(stages: Sequence[str], edges: Sequence[EdgeSpec], stage: str) -> list[str]:
    """Stages reachable from `stage` by following edges, in file order, without `stage` itself."""
    following = successors(stages, edges)
    seen: set[str] = set()
    frontier = list(following[stage])
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(following[current])
    return [name for name in stages if name in seen and name != stage]


def upstream(spec: PipelineSpec, stage: str) -> set[str]:
    """The stages sure to have run before `stage` on every path from the entry (their outputs are available)."""
    _require_stage(spec, stage)
    return guaranteed_before(list(spec.stages), spec.entry, spec.edges).get(stage, set())


def downstream(spec: PipelineSpec, stage: str) -> list[str]:
    """The stages that can run after `stage` (not `stage` itself, even in a loop), in file order."""
    _require_stage(spec, stage)
    return stages_after(list(spec.stages), spec.edges, stage)


def _require_stage(spec: PipelineSpec, stage: str) -> None:
    if stage not in spec.stages:
        raise KeyError(f"pipeline {spec.name!r} has no stage {stage!r}; stages: {', '.join(spec.stages)}")
