"""The wiring of a pipeline file: its edges, entry and output, every stage name they use checked."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fslm.spec import topology
from fslm.spec.models import END, EdgeSpec
from fslm.spec.reporting import ProblemSink, did_you_mean, without_unknown_keys
from fslm.spec.yaml_source import KeyPath


class EdgeLoader:
    def __init__(self, sink: ProblemSink, stage_names: list[str]) -> None:
        self.sink = sink
        self.stage_names = stage_names
        self.file_edges: list[tuple[int, EdgeSpec]] = []  # the file's valid edges, with their index in it

    def load(
        self, raw_edges: list[Any] | None, entry_name: str | None, output: str | None
    ) -> tuple[list[EdgeSpec], str]:
        """The resolved edges and the entry, with every unknown name reported."""
        stage_names = self.stage_names
        first = stage_names[0] if stage_names else ""
        if raw_edges is None:
            if entry_name is not None and entry_name != first:
                self.sink.add(
                    ("entry",),
                    f"entry {entry_name!r} needs 'edges': without them the stages run in file order from the "
                    f"first stage {first!r}",
                )
            edges = topology.sequential_edges(stage_names)
            entry = first
        else:
            edges = [
                edge
                for index, raw in enumerate(raw_edges)
                if not self.sink.is_full and (edge := self._load_edge(index, raw))
            ]
            entry = entry_name if entry_name is not None else first
            if entry_name is not None:
                self._check_stage_reference(("entry",), "entry", entry_name, stage_names)
        if output is not None:
            self._check_stage_reference(("output",), "output", output, stage_names)
        return topology.with_end_edges(stage_names, edges), entry

    def _load_edge(self, index: int, raw_edge: Any) -> EdgeSpec | None:
        path: KeyPath = ("edges", index)
        stage_names = self.stage_names
        raw_edge = without_unknown_keys(EdgeSpec, raw_edge)
        try:
            edge = EdgeSpec.model_validate(raw_edge, by_alias=True, by_name=False)
        except ValidationError as error:
            self.sink.add_validation_error(error, raw_edge, path)
            return _salvaged_edge(raw_edge)
        self.file_edges.append((index, edge))
        edge_name = f"edge {index + 1}"
        for position, source in enumerate(edge.sources):
            where = (*path, "from", position) if isinstance(raw_edge["from"], list) else (*path, "from")
            self._check_stage_reference(where, f"{edge_name} 'from'", source, stage_names)
        for position, target in enumerate(edge.targets):
            where = (*path, "to", position) if isinstance(raw_edge["to"], list) else (*path, "to")
            self._check_stage_reference(where, f"{edge_name} 'to'", target, stage_names, allow_end=True)
        for position, case in enumerate(edge.when):
            self._check_stage_reference(
                (*path, "when", position, "to"),
                f"{edge_name} case {position + 1}",
                case.to,
                stage_names,
                allow_end=True,
            )
        if edge.is_conditional:
            self._check_stage_reference(
                (*path, "otherwise"), f"{edge_name} 'otherwise'", edge.otherwise, stage_names, allow_end=True
            )
        return edge

    def _check_stage_reference(
        self, path: KeyPath, what: str, name: str, stage_names: list[str], *, allow_end: bool = False
    ) -> None:
        if name in stage_names or (allow_end and name == END):
            return
        choices = [*stage_names, END] if allow_end else stage_names
        self.sink.add(
            path, f"{what} names unknown stage {name!r}{did_you_mean(name, choices, what='stages')}"
        )

    def report_endless_loop(self, loop: list[str]) -> None:
        members = set(loop)
        edge_index = next(
            (
                index
                for index, edge in self.file_edges
                if members & set(edge.sources) and members & set(edge.next_stages())
            ),
            None,
        )
        where: KeyPath = ("edges", edge_index) if edge_index is not None else ("stages", loop[0])
        if len(loop) == 1:
            what, them = f"stage {loop[0]!r} loops back to itself", "it"
        else:
            what, them = f"stages {', '.join(repr(name) for name in loop)} form a loop", "them"
        self.sink.add(
            where,
            f"{what} with no way out: no edge, case or 'otherwise' leads from {them} to another stage or END",
        )


def _salvaged_edge(raw_edge: Any) -> EdgeSpec | None:
    """The stage names an invalid edge mentions, as a plain edge: enough for the wiring checks to run without
    reporting its targets unreachable too. Never part of a returned spec (the edge's problem is reported)."""
    if not isinstance(raw_edge, dict):
        return None
    sources = _names(raw_edge.get("from"))
    when = raw_edge.get("when")
    cases = when if isinstance(when, list) else []
    targets = _names(raw_edge.get("to")) + _names(raw_edge.get("otherwise"))
    targets += [name for case in cases if isinstance(case, dict) for name in _names(case.get("to"))]
    if not sources:
        return None
    return EdgeSpec.model_construct(sources=sources, targets=targets or [END], when=[], otherwise=END)


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
