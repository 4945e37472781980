"""Recipe files → a validated `Recipe`, with line-numbered problems; and the recipe the CLI shorthand
means."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from fslm.errors import FslmError
from fslm.files import check_path_name, resolved
from fslm.finetune.recipe import Recipe, RecipeModel
from fslm.spec.problems import SpecError
from fslm.spec.reporting import ProblemSink
from fslm.spec.yaml_source import read_yaml_file

AnyRecipe = TypeVar("AnyRecipe", bound=RecipeModel)


def load_recipe(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> Recipe:
    """Validate the recipe file; `overrides` (section → key → value, e.g. from CLI flags) win over it."""
    return read_recipe(Path(path), Recipe, overrides)


def read_recipe(
    path: Path, model: type[AnyRecipe], overrides: dict[str, dict[str, Any]] | None = None
) -> AnyRecipe:
    """A recipe file validated as `model` (the adapter recipe, or a training workflow's), read with the
    pipeline's YAML reader: the same bounds, and every problem named with its line."""
    check_path_name(path, "recipe")
    file = resolved(path)
    _, parsed = read_yaml_file(file, "recipe")
    if parsed.problems:
        raise SpecError(parsed.problems)
    if not isinstance(parsed.data, dict):
        raise FslmError(f"{path}: a recipe is a mapping with {', '.join(model.model_fields)}")
    data = _with_overrides(parsed.data, overrides or {})
    sink = ProblemSink(file, parsed.locations)
    sink.check_unknown_keys(model, data)
    try:
        recipe = model.model_validate(data, context={"base_dir": file.parent})
    except ValidationError as error:
        sink.add_validation_error(error, data)
        raise SpecError(sink.problems) from None
    if sink.problems:
        raise SpecError(sink.problems)
    return recipe


def shorthand_recipe(
    pipeline: str | Path,
    stage: str,
    data: str | Path,
    output: str | Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Recipe:
    """The recipe `fslm finetune PIPELINE --stage NAME --data FILE` stands for: records hold the stage's
    template variables by name and `target`; the adapter goes to adapters/PIPELINE-STAGE beside the
    pipeline."""
    for what, given in (("pipeline", pipeline), ("data file", data), ("output", output)):
        if given is not None:
            check_path_name(Path(given), what)
    pipeline_path = resolved(Path(pipeline))
    default_output = pipeline_path.parent / "adapters" / f"{pipeline_path.stem}-{stage}"
    raw = {
        "target": {"pipeline": str(pipeline_path), "stage": stage},
        "data": {"dataset": {"path": str(resolved(Path(data)))}},
        "output": str(resolved(Path(output)) if output else default_output),
    }
    merged = _with_overrides(raw, overrides or {})
    try:
        return Recipe.model_validate(merged)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}" for detail in error.errors()
        )
        raise FslmError(f"invalid fine-tuning options: {problems}") from None


def _with_overrides(data: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = dict(data)
    for section, values in overrides.items():
        current = merged.get(section)
        merged[section] = {**(current if isinstance(current, dict) else {}), **values}
    return merged
