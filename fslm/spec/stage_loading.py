"""Loading one stage entry: its `use:` file merged in, its name, template and kind checked, its spec built.

`StageLoader` is also what a node kind's `check` sees (`fslm.spec.kinds.StageChecks`).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fslm.errors import FslmError
from fslm.spec.file_format import stage_entry_model
from fslm.spec.kinds import kind_keys_text, kinds_for, node_kinds
from fslm.spec.models import END, StageSpecBase
from fslm.spec.paths import is_dir, is_file, resolve_path
from fslm.spec.reporting import ProblemSink, did_you_mean, without_unknown_keys
from fslm.spec.run_input import INPUT_VARIABLE
from fslm.spec.stage_files import (
    StageFile,
    available_stage_files,
    find_stage_file,
    merge_stage,
    read_stage_file,
)
from fslm.spec.templates import TemplateVariable, check_template
from fslm.spec.yaml_source import KeyPath

# Names a prompt template could not refer to as a plain variable, or that mean something else there.
_RESERVED_NAMES = {INPUT_VARIABLE, END, "true", "false", "none", "loop", "self"}


def variable_name_problem(what: str, name: str, things: str) -> str | None:
    """Why `name` (of a stage, or of an input field: `things`) cannot be a template variable, or None."""
    if name in _RESERVED_NAMES:
        return f"{what} is reserved; choose another name"
    if not name.isidentifier() or keyword.iskeyword(name):
        return (
            f"{what} is not a valid identifier: prompt templates refer to {things} by name, so use letters, "
            "digits and '_' (not starting with a digit, not a Python keyword)"
        )
    return None


@dataclass(frozen=True)
class TemplateReads:
    """A stage's valid template (its prompt, or a kind's other template key) and what it reads."""

    stage: str
    path: KeyPath  # ("stages", stage, key)
    variables: tuple[TemplateVariable, ...]  # the ones the pipeline must supply: inputs and stage outputs


class StageLoader:
    def __init__(self, file: Path, sink: ProblemSink, model_handles: set[str]) -> None:
        self.file = file
        self.sink = sink
        self.model_handles = model_handles
        self.stages: dict[str, StageSpecBase] = {}
        self.stage_files: dict[Path, StageFile] = {}
        # every valid template of every stage and the variables it reads, for the wiring checks
        self.templates: list[TemplateReads] = []

    def load(self, name: str, raw_stage: Any) -> None:
        """Check one stage entry of the pipeline file; a valid stage is added to `stages`."""
        path: KeyPath = ("stages", name)
        self._check_stage_name(name)
        if not isinstance(raw_stage, dict):
            self.sink.add(
                path, f"stage {name!r} must be a mapping of stage keys ({kind_keys_text()}, prompt, ...)"
            )
            return
        merged = self._with_used_file(name, without_unknown_keys(stage_entry_model(), raw_stage))
        if merged is None:
            return
        prompt = merged.get("prompt")
        if isinstance(prompt, str):
            self.check_template(name, "prompt", prompt)
        kinds = kinds_for(merged)
        if len(kinds) != 1:
            self.sink.add(path, f"stage {name!r}: {_kind_problem(merged)}")
            return
        (kind,) = kinds
        if kind.check is not None:
            kind.check(name, merged, self)
        try:
            self.stages[name] = kind.spec.model_validate(merged)
        except ValidationError as error:
            self.sink.add_validation_error(error, merged, path)

    def report(self, path: KeyPath, message: str) -> None:
        self.sink.add(path, message)

    def _check_stage_name(self, name: str) -> None:
        problem = variable_name_problem(f"stage name {name!r}", name, "stages")
        if problem is not None:
            self.sink.add(("stages", name), problem)

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
                f"stage {name!r} uses stage file {use!r}, which was not found in stages/ or ../stages/ next "
                f"to the pipeline{did_you_mean(use, choices, what='stage files')}",
            )
            return None
        if found not in self.stage_files:
            stage_file, problems = read_stage_file(found)
            self.stage_files[found] = stage_file
            self.sink.problems.extend(problems)
        if not isinstance(self.stage_files[found].parsed.data, dict):
            return None  # its own problem is reported; missing keys here would only repeat it
        return merge_stage(self.stage_files[found], raw_stage, ("stages", name), self.sink.locations)

    def resolve_adapter(self, name: str, merged: dict[str, Any], adapter_path: KeyPath) -> bool:
        """Make `adapter` an absolute Path (relative to the file that names it) and check it is an adapter."""
        adapter = merged.get("adapter")
        if adapter is None:
            return True
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
                f"stage {name!r}: adapter directory {adapter!r} has no adapter_config.json, so it is not a "
                "peft adapter",
            )
        return True

    def resolve_directory(self, name: str, holder: dict[str, Any], key: str, path: KeyPath) -> Path | None:
        """Make `holder[key]` an absolute Path (relative to the file that names it); None when it is not a
        directory (reported)."""
        value = holder.get(key)
        if not isinstance(value, str) or not value:
            self.sink.add(path, f"stage {name!r}: {key!r} must be a directory path (got {value!r})")
            return None
        location = self.sink.locate(path)
        try:
            directory = resolve_path(value, location.file.parent if location else self.file.parent, key)
        except FslmError as error:
            self.sink.add(path, f"stage {name!r}: {error}")
            return None
        holder[key] = directory
        if not is_dir(directory):
            self.sink.add(path, f"stage {name!r}: {key} directory {value!r} does not exist ({directory})")
            return None
        return directory

    def check_template(
        self, name: str, key: str, source: str, provided: frozenset[str] = frozenset()
    ) -> tuple[TemplateVariable, ...] | None:
        """Check the template `source` in stage `name`'s `key`: its syntax now, and the variables it reads
        (but `provided`) against the pipeline's inputs and upstream stages once the wiring is known. Returns
        the variables it reads, or None when it is not a valid template."""
        path: KeyPath = ("stages", name, key)
        checked = check_template(source)
        for problem in checked.problems:
            self.add_template_problem(path, problem.line, f"stage {name!r} {key}: {problem.message}")
        if checked.problems:
            return None
        reads = tuple(variable for variable in checked.free_variables if variable.name not in provided)
        self.templates.append(TemplateReads(name, path, reads))
        return checked.free_variables

    def add_template_problem(self, prompt_path: KeyPath, template_line: int, message: str) -> None:
        location = self.sink.locate(prompt_path)
        if location is None:
            self.sink.add(prompt_path, message)
        else:
            self.sink.add_at_line(location.file, location.value_line + template_line - 1, message)


def _kind_problem(stage: dict[str, Any]) -> str:
    held = [key for key in node_kinds() if stage.get(key) is not None]
    if not held:
        return f"a stage needs one of {kind_keys_text()} (and a prompt)"
    return f"a stage needs exactly one of {' or '.join(repr(key) for key in held)}, the key of its kind"
