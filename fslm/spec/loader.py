"""`load_spec`: read a pipeline file, check everything that can be checked without loading a model.

Every problem is collected (not just the first) and raised together as one `SpecError`.
"""

from __future__ import annotations

import hashlib
import keyword
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from fslm.errors import FslmError
from fslm.spec import topology
from fslm.spec.file_format import PipelineFileSpec, StageEntrySpec
from fslm.spec.models import (
    END,
    INPUT_VARIABLE,
    EdgeSpec,
    ModelSpec,
    PipelineSpec,
    StageSpec,
    StrictModel,
)
from fslm.spec.paths import is_dir, is_file, resolve_path
from fslm.spec.problems import Problem, SpecError
from fslm.spec.reporting import ProblemSink, did_you_mean, listing, without_unknown_keys
from fslm.spec.sources import check_source
from fslm.spec.stage_files import (
    StageFile,
    available_stage_files,
    find_stage_file,
    merge_stage,
    read_stage_file,
)
from fslm.spec.templates import TemplateVariable, check_template
from fslm.spec.yaml_source import KeyPath, read_yaml_file

# Names a prompt template could not refer to as a plain variable, or that mean something else there.
_RESERVED_STAGE_NAMES = {INPUT_VARIABLE, END, "true", "false", "none", "loop", "self"}


class _TopLevel(StrictModel):
    """The top-level keys' types only; the content of models, stages and edges is checked piece by piece."""

    model_config = ConfigDict(extra="ignore", frozen=False)

    name: str | None = None
    description: str = ""
    models: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, Any]
    edges: list[Any] | None = None
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
        self.stage_files: dict[Path, StageFile] = {}
        self.models: dict[str, ModelSpec] = {}
        self.stages: dict[str, StageSpec] = {}
        self.templates: dict[str, tuple[KeyPath, tuple[TemplateVariable, ...]]] = {}
        self.file_edges: list[tuple[int, EdgeSpec]] = []  # the file's valid edges, with their index in it

    def load(self) -> PipelineSpec:
        self.sink.check_unknown_keys(PipelineFileSpec, self.data)
        top = self._top_level()
        self._load_models(top.models)
        for name, raw_stage in top.stages.items():
            if self.sink.is_full:
                break
            self._load_stage(name, raw_stage, set(top.models))
        stage_names = list(top.stages)
        edges, entry = self._wiring(top, stage_names)
        if entry in top.stages and not self.sink.is_full:  # a full sink may have skipped edges
            self._check_graph(stage_names, entry, edges)
        if self.sink.problems:
            raise SpecError(self.sink.problems)
        return PipelineSpec(
            name=top.name or self.file.stem,
            description=top.description,
            models=self.models,
            stages=self.stages,
            edges=edges,
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

    def _load_stage(self, name: str, raw_stage: Any, model_handles: set[str]) -> None:
        path: KeyPath = ("stages", name)
        self._check_stage_name(name)
        if not isinstance(raw_stage, dict):
            self.sink.add(path, f"stage {name!r} must be a mapping of stage keys (model, prompt, ...)")
            return
        merged = self._with_used_file(name, without_unknown_keys(StageEntrySpec, raw_stage))
        if merged is None:
            return
        if not self._resolve_adapter(name, merged):
            merged.pop("adapter", None)
        self._check_ensemble_members(name, merged.get("ensemble"), model_handles)
        model = merged.get("model")
        if isinstance(model, str) and model not in model_handles:
            self.sink.add(
                (*path, "model"),
                f"stage {name!r} uses unknown model {model!r}{did_you_mean(model, model_handles, what='defined models')}",
            )
        prompt = merged.get("prompt")
        if isinstance(prompt, str):
            self._check_template_syntax(name, prompt)
        try:
            self.stages[name] = StageSpec.model_validate(merged)
        except ValidationError as error:
            self.sink.add_validation_error(error, merged, path)

    def _check_stage_name(self, name: str) -> None:
        path: KeyPath = ("stages", name)
        if name in _RESERVED_STAGE_NAMES:
            self.sink.add(path, f"stage name {name!r} is reserved; choose another name")
        elif not name.isidentifier() or keyword.iskeyword(name):
            self.sink.add(
                path,
                f"stage name {name!r} is not a valid identifier: prompt templates refer to stages by name, so use "
                "letters, digits and '_' (not starting with a digit, not a Python keyword)",
            )

    def _with_used_file(self, name: str, raw_stage: dict[str, Any]) -> dict[str, Any] | None:
        """The stage's keys with its `use:` file merged in; None when the used file cannot be read."""
        if "use" not in raw_stage:
            return dict(raw_stage)
        use = raw_stage["use"]
        use_path: KeyPath = ("stages", name, "use")
        if not isinstance(use, str):
            self.sink.add(use_path, f"stage {name!r}: 'use' must be the name of a stage file (got {use!r})")
            return None
        try:
            found = find_stage_file(use, self.file.parent)
        except FslmError as error:
            self.sink.add(use_path, f"stage {name!r}: {error}")
            return None
        if found is None:
            choices = available_stage_files(self.file.parent)
            self.sink.add(
                use_path,
                f"stage {name!r} uses stage file {use!r}, which was not found in stages/ or ../stages/ next to "
                f"the pipeline{did_you_mean(use, choices, what='stage files')}",
            )
            return None
        if found not in self.stage_files:
            stage_file, problems = read_stage_file(found)
            self.stage_files[found] = stage_file
            self.sink.problems.extend(problems)
        if not isinstance(self.stage_files[found].parsed.data, dict):
            return None  # its own problem is reported; missing keys here would only repeat it
        return merge_stage(self.stage_files[found], raw_stage, ("stages", name), self.sink.locations)

    def _check_ensemble_members(self, name: str, ensemble: Any, model_handles: set[str]) -> None:
        """Report unknown member handles and resolve member adapters (the block's values are checked later)."""
        if not isinstance(ensemble, dict) or not isinstance(ensemble.get("members"), list):
            return
        for index, member in enumerate(ensemble["members"]):
            path: KeyPath = ("stages", name, "ensemble", "members", index)
            handle = member.get("model") if isinstance(member, dict) else member
            if isinstance(handle, str) and handle not in model_handles:
                self.sink.add(
                    (*path, "model") if isinstance(member, dict) else path,
                    f"stage {name!r}: ensemble member {handle!r} is not a defined model"
                    f"{did_you_mean(handle, model_handles, what='defined models')}",
                )
            if isinstance(member, dict) and not self._resolve_adapter(name, member, (*path, "adapter")):
                member.pop("adapter", None)

    def _resolve_adapter(self, name: str, merged: dict[str, Any], adapter_path: KeyPath | None = None) -> bool:
        """Make `adapter` an absolute Path (relative to the file that names it) and check it is an adapter."""
        adapter = merged.get("adapter")
        if adapter is None:
            return True
        adapter_path = adapter_path or ("stages", name, "adapter")
        if not isinstance(adapter, str) or not adapter:
            self.sink.add(
                adapter_path, f"stage {name!r}: 'adapter' must be a directory path (got {adapter!r})"
            )
            return False
        location = self.sink.locate(adapter_path)
        base_dir = location.file.parent if location is not None else self.file.parent
        try:
            directory = resolve_path(adapter, base_dir, "adapter")
        except FslmError as error:
            self.sink.add(adapter_path, f"stage {name!r}: {error}")
            return False
        merged["adapter"] = directory
        if not is_dir(directory):
            self.sink.add(
                adapter_path, f"stage {name!r}: adapter directory {adapter!r} does not exist ({directory})"
            )
        elif not is_file(directory / "adapter_config.json"):
            self.sink.add(
                adapter_path,
                f"stage {name!r}: adapter directory {adapter!r} has no adapter_config.json, so it is not a peft "
                "adapter",
            )
        return True

    def _check_template_syntax(self, name: str, prompt: str) -> None:
        prompt_path: KeyPath = ("stages", name, "prompt")
        checked = check_template(prompt)
        for problem in checked.problems:
            self._add_template_problem(prompt_path, problem.line, f"stage {name!r} prompt: {problem.message}")
        if not checked.problems:
            self.templates[name] = (prompt_path, checked.free_variables)

    def _add_template_problem(self, prompt_path: KeyPath, template_line: int, message: str) -> None:
        location = self.sink.locate(prompt_path)
        if location is None:
            self.sink.add(prompt_path, message)
        else:
            self.sink.add_at_line(location.file, location.value_line + template_line - 1, message)

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
        for name, (prompt_path, variables) in self.templates.items():
            if self.sink.is_full:
                break
            if before.is_reachable(name):
                self._check_template_variables(name, prompt_path, variables, before, stage_names)

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
            if variable.name != INPUT_VARIABLE and not before.has_run(name, variable.name)
        ]
        if not missing:
            return
        available = [INPUT_VARIABLE, *before.of(name)]
        listed = listing(available)
        for variable in missing:
            if variable.name == name:
                message = (
                    f"stage {name!r} prompt uses its own output {variable.name!r} (available here: {listed})"
                )
            elif before.is_stage(variable.name):
                message = (
                    f"stage {name!r} prompt uses {variable.name!r}, but stage {variable.name!r} is not sure to have "
                    f"run before {name!r} on every path (available here: {listed})"
                )
            else:
                message = (
                    f"stage {name!r} prompt uses undefined variable {variable.name!r}"
                    f"{did_you_mean(variable.name, available, what='available here')}"
                )
            self._add_template_problem(prompt_path, variable.line, message)

    def _source_hash(self) -> str:
        digest = hashlib.sha256(self.raw)
        for path in sorted(self.stage_files):
            digest.update(b"\0" + path.name.encode() + b"\0" + self.stage_files[path].raw)
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
