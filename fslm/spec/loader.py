"""`load_spec`: read a pipeline file, check everything that can be checked without loading a model.

Every problem is collected (not just the first) and raised together as one `SpecError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from fslm.spec import topology
from fslm.spec.edge_loading import EdgeLoader
from fslm.spec.file_format import pipeline_file_model
from fslm.spec.kinds import inner_stages, kind_of
from fslm.spec.models import (
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

MAX_STAGES = 2_000  # checking a stage and its own template takes up to 0.5 ms: 2,000 take about a second


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
        self.inputs: list[str] = []  # the valid names of the file's `inputs:`

    def load(self) -> PipelineSpec:
        stages = self.data.get("stages")
        if isinstance(stages, dict) and len(stages) > MAX_STAGES:  # refused before checking each one
            self.sink.add(("stages",), f"{len(stages):,} stages; a pipeline has at most {MAX_STAGES:,}")
            raise SpecError(self.sink.problems)
        self.sink.check_unknown_keys(pipeline_file_model(), self.data)
        top = self._top_level()
        self._load_models(top.models)
        self.stage_loader.model_handles = set(top.models)
        for name, raw_stage in top.stages.items():
            if self.sink.is_full:
                break
            self.stage_loader.load(name, raw_stage)
        stage_names = list(top.stages)
        self._check_stages()
        # Stages another stage runs inside its own node (a router's experts) are not wired.
        inner = inner_stages(self.stage_loader.stages)
        wired = [name for name in stage_names if name not in inner]
        self.inputs = self._declared_inputs(top.inputs, stage_names)
        wiring = EdgeLoader(self.sink, wired)
        edges, entry = wiring.load(top.edges, top.entry, top.output)
        if entry in top.stages and not self.sink.is_full:  # a full sink may have skipped edges
            self._check_graph(wired, entry, edges, wiring, inner)
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

    def _check_stages(self) -> None:
        """Each kind's checks against the other stages (see `NodeKind.check_stages`)."""
        stages = self.stage_loader.stages
        for name, stage in stages.items():
            check = kind_of(stage).check_stages
            if check is not None:
                check(name, stage, stages, self.sink.add)

    def _check_graph(
        self,
        stage_names: list[str],
        entry: str,
        edges: list[EdgeSpec],
        wiring: EdgeLoader,
        inner: dict[str, str],
    ) -> None:
        reached = topology.reachable_stages(stage_names, entry, edges)
        for name in stage_names:
            if name not in reached:
                self.sink.add(
                    ("stages", name),
                    f"stage {name!r} can never run: no path of edges leads to it from the entry {entry!r}",
                )
        for loop in topology.cycles_without_exit(stage_names, edges):
            wiring.report_endless_loop(loop)
        before = topology.guaranteed_before(stage_names, entry, edges)
        for read in self.stage_loader.templates:
            if self.sink.is_full:
                break
            position = _running_stage(read.stage, inner)
            if before.is_reachable(position):
                self._check_template_variables(
                    read.stage, read.path, read.variables, before, stage_names, position
                )

    def _check_template_variables(
        self,
        name: str,
        prompt_path: KeyPath,
        variables: tuple[TemplateVariable, ...],
        before: topology.StagesBefore,
        stage_names: list[str],
        position: str,
    ) -> None:
        """`position`: the wired stage whose place in the graph `name` runs at (itself, or the stage that runs
        it inside its node)."""
        missing = [
            variable
            for variable in variables
            if variable.name not in (INPUT_VARIABLE, *self.inputs)
            and not before.has_run(position, variable.name)
        ]
        if not missing:
            return
        available = [INPUT_VARIABLE, *self.inputs, *before.of(position)]
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


def _running_stage(stage: str, inner: dict[str, str]) -> str:
    """The wired stage `stage` runs at: itself, or (through nesting) the stage whose node runs it."""
    for _ in range(len(inner)):  # bounded: a stage that runs its own runner is reported, not followed forever
        if stage not in inner:
            break
        stage = inner[stage]
    return stage
