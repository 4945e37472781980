"""`load_spec`: read a pipeline file, check everything that can be checked without loading a model.

Every problem is collected (not just the first) and raised together as one `SpecError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from fslm.spec import topology
from fslm.spec.file_format import pipeline_file_model
from fslm.spec.models import (
    END,
    EdgeSpec,
    ModelSpec,
    PipelineSpec,
    StrictModel,
)
from fslm.spec.paths import resolve_path
from fslm.spec.problems import Problem, SpecError
from fslm.spec.reporting import ProblemSink, did_you_mean, listing, without_unknown_keys
from fslm.spec.run_input import INPUT_VARIABLE
from fslm.spec.sources import check_source
from fslm.spec.stage_loading import StageLoader, variable_name_problem
from fslm.spec.templates import TemplateVariable
from fslm.spec.yaml_source import KeyPath, read_yaml_file


class _TopLevel(StrictModel):
    """The top-level keys' types only; the content of models, stages and edges is checked piece by piece."""

    model_config = ConfigDict(extra="ignore", frozen=False)

    name: str | None = None
    description: str = ""
    models: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, Any]
    edges: list[Any] | None = None
    inputs: list[str] = Field(default_factory=list)
    entry: str | None = None
    output: str | None = None


def load_spec(path: str | Path) -> PipelineSpec:
    """Load and fully validate the pipeline file at `path`; raises SpecError listing every problem found."""
    file = resolve_path(path, what="pipeline file")
    raw, parsed = read_yaml_file(file, "pipeline file")
    if parsed.data is None:
        raise SpecError(
            parsed.problems or [Problem(file, None, "file is empty; expected a mapping with 'stages'")]
        )
    if not isinstance(parsed.data, dict):
        message = "the top level must be a mapping with 'stages' (and usually 'models' and 'edges')"
        raise SpecError([*parsed.problems, Problem(file, parsed.line_of(()), message)])
    return _PipelineLoader(
        file, raw, parsed.data, ProblemSink(file, parsed.locations), parsed.problems
    ).load()


class _PipelineLoader:
    def __init__(
        self, file: Path, raw: bytes, data: dict[str, Any], sink: ProblemSink, problems: list[Problem]
    ) -> None:
        self.file = file
        self.raw = raw
        self.data = data
        self.sink = sink
        self.sink.problems.extend(problems)
        self.models: dict[str, ModelSpec] = {}
        self.stage_loader = StageLoader(file, sink, set())
        self.file_edges: list[tuple[int, EdgeSpec]] = []  # the file's valid edges, with their index in it
        self.inputs: list[str] = []  # the valid names of the file's `inputs:`

    def load(self) -> PipelineSpec:
        self.sink.check_unknown_keys(pipeline_file_model(), self.data)
        top = self._top_level()
        self._load_models(top.models)
        self.stage_loader.model_handles = set(top.models)
        for name, raw_stage in top.stages.items():
            if self.sink.is_full:
                break
            self.stage_loader.load(name, raw_stage)
        stage_names = list(top.stages)
        self.inputs = self._declared_inputs(top.inputs, stage_names)
        edges, entry = self._wiring(top, stage_names)
        if entry in top.stages and not self.sink.is_full:  # a full sink may have skipped edges
            self._check_graph(stage_names, entry, edges)
        if self.sink.problems:
            raise SpecError(self.sink.problems)
        return PipelineSpec(
            name=top.name or self.file.stem,
            description=top.description,
            models=self.models,
            stages=self.stage_loader.stages,
            edges=edges,
            inputs=self.inputs,
            input_fields=[*self.inputs, *self._input_variable_read()],
            entry=entry,
            output=top.output,
            path=self.file,
            source_hash=self._source_hash(),
        )

    def _top_level(self) -> _TopLevel:
        data = dict(self.data)
        try:
            top = _TopLevel.model_validate(data)
        except ValidationError as error:
            self.sink.add_validation_error(error, data)
            for detail in error.errors():
                data.pop(str(detail["loc"][0]), None)
            data.setdefault("stages", {})
            top = _TopLevel.model_validate(data)
        if not top.stages and isinstance(self.data.get("stages"), dict):
            self.sink.add(("stages",), "the pipeline has no stages")
        return top

    def _declared_inputs(self, names: list[str], stage_names: list[str]) -> list[str]:
        """The valid field names of `inputs:`, with a problem reported for each other one."""
        valid: list[str] = []
        for index, name in enumerate(names):
            what = f"input field {name!r}"
            if name == INPUT_VARIABLE:
                problem: str | None = (
                    f"{what} needs no declaration: every template may read `{{{{ input }}}}` (a text input, "
                    "or a structured input's 'input' field)"
                )
            elif name in stage_names:
                problem = f"{what} has the name of a stage: templates could not tell the two apart"
            elif name in valid:
                problem = f"{what} is listed twice"
            else:
                problem = variable_name_problem(what, name, "input fields")
            if problem is None:
                valid.append(name)
            else:
                self.sink.add(("inputs", index), problem)
        return valid

    def _input_variable_read(self) -> list[str]:
        """[`input`] when a stage's prompt template reads `{{ input }}`, else []."""
        templates = self.stage_loader.templates
        reads = any(variable.name == INPUT_VARIABLE for read in templates for variable in read.variables)
        return [INPUT_VARIABLE] if reads else []

    def _load_models(self, raw_models: dict[str, Any]) -> None:
        for handle, raw_model in raw_models.items():
            path: KeyPath = ("models", handle)
            raw_model = without_unknown_keys(ModelSpec, raw_model)
            source = raw_model.get("source") if isinstance(raw_model, dict) else None
            checked = check_source(source, self.file.parent) if isinstance(source, str) and source else None
            if checked is not None and checked.problem:
                self.sink.add((*path, "source"), f"model {handle!r}: {checked.problem}")
            try:
                model = ModelSpec.model_validate(raw_model)
            except ValidationError as error:
                self.sink.add_validation_error(error, raw_model, path)
                continue
            assert checked is not None  # a valid model has a non-empty string source
            if model.revision is not None and checked.kind != "hub":
                self.sink.add(
                    (*path, "revision"), f"model {handle!r}: 'revision' only applies to hub ids 'org/name'"
                )
            self.models[handle] = model.model_copy(update={"source": checked.source})

    def _wiring(self, top: _TopLevel, stage_names: list[str]) -> tuple[list[EdgeSpec], str]:
        """The resolved edges and the entry, with every unknown name reported."""
        first = stage_names[0] if stage_names else ""
        if top.edges is None:
            if top.entry is not None and top.entry != first:
                self.sink.add(
                    ("entry",),
                    f"entry {top.entry!r} needs 'edges': without them the stages run in file order from the "
                    f"first stage {first!r}",
                )
            edges = topology.sequential_edges(stage_names)
            entry = first
        else:
            edges = [
                edge
                for index, raw in enumerate(top.edges)
                if not self.sink.is_full and (edge := self._load_edge(index, raw, stage_names))
            ]
            entry = top.entry if top.entry is not None else first
            if top.entry is not None:
                self._check_stage_reference(("entry",), "entry", top.entry, stage_names)
        if top.output is not None:
            self._check_stage_reference(("output",), "output", top.output, stage_names)
        return topology.with_end_edges(stage_names, edges), entry

    def _load_edge(self, index: int, raw_edge: Any, stage_names: list[str]) -> EdgeSpec | None:
        path: KeyPath = ("edges", index)
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

    def _check_graph(self, stage_names: list[str], entry: str, edges: list[EdgeSpec]) -> None:
        reached = topology.reachable_stages(stage_names, entry, edges)
        for name in stage_names:
            if name not in reached:
                self.sink.add(
                    ("stages", name),
                    f"stage {name!r} can never run: no path of edges leads to it from the entry {entry!r}",
                )
        for loop in topology.cycles_without_exit(stage_names, edges):
            self._report_endless_loop(loop)
        before = topology.guaranteed_before(stage_names, entry, edges)
        for read in self.stage_loader.templates:
            if self.sink.is_full:
                break
            if before.is_reachable(read.stage):
                self._check_template_variables(read.stage, read.path, read.variables, before, stage_names)

    def _report_endless_loop(self, loop: list[str]) -> None:
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

    def _check_template_variables(
        self,
        name: str,
        prompt_path: KeyPath,
        variables: tuple[TemplateVariable, ...],
        before: topology.StagesBefore,
        stage_names: list[str],
    ) -> None:
        missing = [
            variable
            for variable in variables
            if variable.name not in (INPUT_VARIABLE, *self.inputs) and not before.has_run(name, variable.name)
        ]
        if not missing:
            return
        available = [INPUT_VARIABLE, *self.inputs, *before.of(name)]
        listed = listing(available)
        key = prompt_path[-1]  # "prompt", or a kind's other template key
        for variable in missing:
            if variable.name == name:
                message = (
                    f"stage {name!r} {key} uses its own output {variable.name!r} (available here: {listed})"
                )
            elif before.is_stage(variable.name):
                message = (
                    f"stage {name!r} {key} uses {variable.name!r}, but stage {variable.name!r} is not sure "
                    f"to have run before {name!r} on every path (available here: {listed})"
                )
            else:
                message = (
                    f"stage {name!r} {key} uses undefined variable {variable.name!r}"
                    f"{did_you_mean(variable.name, available, what='available here')}; a field of a "
                    "structured input is read only when the pipeline declares it in `inputs:`"
                )
            self.stage_loader.add_template_problem(prompt_path, variable.line, message)

    def _source_hash(self) -> str:
        digest = hashlib.sha256(self.raw)
        stage_files = self.stage_loader.stage_files
        for path in sorted(stage_files):
            digest.update(b"\0" + path.name.encode() + b"\0" + stage_files[path].raw)
        return digest.hexdigest()


def _salvaged_edge(raw_edge: Any) -> EdgeSpec | None:
    """The stage names an invalid edge mentions, as a plain edge: enough for the wiring checks to run without
    reporting its targets unreachable too. Never part of a returned spec (the edge's problem is reported)."""
    if not isinstance(raw_edge, dict):
        return None
    sources = _names(raw_edge.get("from"))
    cases = raw_edge.get("when") if isinstance(raw_edge.get("when"), list) else []
    targets = _names(raw_edge.get("to")) + _names(raw_edge.get("otherwise"))
    targets += [name for case in cases if isinstance(case, dict) for name in _names(case.get("to"))]
    if not sources:
        return None
    return EdgeSpec.model_construct(sources=sources, targets=targets or [END], when=[], otherwise=END)


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
