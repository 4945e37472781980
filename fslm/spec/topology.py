"""Questions about the wiring of stages: what runs before what, what is reachable, which loops never end.

Functions take plain stage names and edges so validation can ask them before a `PipelineSpec` exists.
Targets named END (or unknown names) are ignored: they lead out of the graph.
"""

from __future__ import annotations

from collections import deque
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
    result: dict[str, dict[str, None]] = {stage: {} for stage in stages}  # dicts: ordered sets
    for edge in edges:
        targets = [target for target in edge.next_stages() if target in known]
        for source in edge.sources:
            if source in known:
                result[source].update(dict.fromkeys(targets))
    return {stage: list(following) for stage, following in result.items()}


def reachable_stages(stages: Sequence[str], entry: str, edges: Sequence[EdgeSpec]) -> set[str]:
    """Stages that can run: the entry, and targets of edges whose sources can all run (fan-in waits for
    all)."""
    known = set(stages)
    waiting = [len(set(edge.sources)) for edge in edges]  # sources of each edge not reached yet
    leaving: dict[str, list[int]] = {}
    for index, edge in enumerate(edges):
        for source in set(edge.sources):
            leaving.setdefault(source, []).append(index)
    reached: set[str] = set()
    frontier = [entry] if entry in known else []
    while frontier:
        stage = frontier.pop()
        if stage in reached:
            continue
        reached.add(stage)
        for index in leaving.get(stage, []):
            waiting[index] -= 1
            if waiting[index] == 0:
                frontier += [target for target in edges[index].next_stages() if target in known]
    return reached


class StagesBefore:
    """For each reachable stage, the stages that have run before it on every path from the entry.

    Held as one bitmask (an int, bit i for `stages[i]`) per stage, so that a 2,000-stage chain costs
    kilobytes, not the millions of set entries its answer spells out."""

    def __init__(self, stages: Sequence[str], masks: dict[str, int]) -> None:
        self.stages = list(stages)
        self.index = {stage: position for position, stage in enumerate(self.stages)}
        self.masks = masks

    def is_stage(self, name: str) -> bool:
        return name in self.index

    def is_reachable(self, stage: str) -> bool:
        return stage in self.masks

    def has_run(self, stage: str, before: str) -> bool:
        """Whether `before` is sure to have run before `stage` (False for an unreachable `stage`)."""
        return before in self.index and bool(self.masks.get(stage, 0) >> self.index[before] & 1)

    def of(self, stage: str) -> list[str]:
        """The stages sure to have run before `stage`, in file order; empty for an unreachable stage."""
        mask = self.masks.get(stage, 0)
        found = []
        while mask:
            lowest = mask & -mask
            found.append(self.stages[lowest.bit_length() - 1])
            mask ^= lowest
        return found


def guaranteed_before(stages: Sequence[str], entry: str, edges: Sequence[EdgeSpec]) -> StagesBefore:
    """For each reachable stage, the stages that have run before it on every path from the entry.

    A fixed point in the manner of dominators: an edge into a stage brings its sources and everything before
    them (the union over a fan-in edge's sources, since it waits for all); separate incoming edges intersect.
    Solved with a worklist: a stage is looked at again only when what arrives at it changed.
    """
    reached = reachable_stages(stages, entry, edges)
    bit = {stage: 1 << position for position, stage in enumerate(stages)}
    arriving: dict[str, list[list[str]]] = {stage: [] for stage in stages if stage in reached}
    following: dict[str, set[str]] = {stage: set() for stage in arriving}
    for edge in edges:
        if not all(source in reached for source in edge.sources):
            continue
        for target in edge.next_stages():
            if target in arriving and target != entry:
                arriving[target].append(list(dict.fromkeys(edge.sources)))
                for source in edge.sources:
                    following[source].add(target)
    before: dict[str, int | None] = {stage: None for stage in arriving}  # None: not yet known (all stages)
    if entry in before:
        before[entry] = 0
    # a queue, not a dict: `next(iter(d))` after deleting the front of `d` scans the deleted slots (quadratic)
    queue = deque(stage for stage in stages if stage in arriving and stage != entry)
    pending = set(queue)
    while queue:
        stage = queue.popleft()
        pending.discard(stage)
        result = _arriving_mask(arriving[stage], before, bit)
        if result is not None and result != before[stage]:
            before[stage] = result
            for target in following[stage] - pending - {entry}:
                queue.append(target)
                pending.add(target)
    return StagesBefore(stages, {stage: (mask or 0) & ~bit[stage] for stage, mask in before.items()})


def _arriving_mask(
    incoming: list[list[str]], before: dict[str, int | None], bit: dict[str, int]
) -> int | None:
    result: int | None = None
    for sources in incoming:
        known = [before[source] for source in sources]
        if any(mask is None for mask in known):
            continue  # unknown yet means "everything", which leaves the intersection unchanged
        brought = 0
        for source, mask in zip(sources, known, strict=True):
            brought |= (mask or 0) | bit[source]
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
    """The stages sure to have run before `stage` on every path from the entry (their outputs are
    available)."""
    _require_stage(spec, stage)
    return set(guaranteed_before(list(spec.stages), spec.entry, spec.edges).of(stage))


def downstream(spec: PipelineSpec, stage: str) -> list[str]:
    """The stages that can run after `stage` (not `stage` itself, even in a loop), in file order."""
    _require_stage(spec, stage)
    return stages_after(list(spec.stages), spec.edges, stage)


def _require_stage(spec: PipelineSpec, stage: str) -> None:
    if stage not in spec.stages:
        raise KeyError(f"pipeline {spec.name!r} has no stage {stage!r}; stages: {', '.join(spec.stages)}")
