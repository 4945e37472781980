"""The recipe reference in docs/, generated from the recipe's pydantic models so it cannot drift.

Regenerate with `python -m fslm.finetune.reference` (a test fails when the committed files are stale).
"""

import json
from pathlib import Path
from typing import Any

from fslm.files import write_text_atomically
from fslm.finetune.recipe import Recipe
from fslm.spec.reference import DOCS, _table

SECTIONS = {
    "Recipe": "Recipe file (top level)",
    "TargetSpec": "`target`",
    "DataSpec": "`data` (and `eval.data`)",
    "DatasetSource": "`data.dataset`",
    "RunsSource": "`data.from_runs`",
    "MetricFilter": "`data.from_runs.filter`",
    "TeacherSource": "`data.teacher`",
    "LoraSpec": "`lora`",
    "TrainSpec": "`train`",
    "EvalSpec": "`eval`",
}


def recipe_json_schema() -> dict[str, Any]:
    schema = Recipe.model_json_schema()
    schema["title"] = "fslm fine-tuning recipe"
    return schema


def render_reference() -> str:
    schema = recipe_json_schema()
    definitions = {"Recipe": schema, **schema["$defs"]}
    lines = [
        "# Fine-tuning recipe reference",
        "",
        "Generated from fslm's pydantic models by `python -m fslm.finetune.reference`; do not edit by hand.",
        (
            "Paths are relative to the recipe file. "
            "The `train` and `lora` keys can also be set on the command line"
        ),
        (
            "with the same names (`--max-steps 20` sets `train.max_steps`). "
            "For editor completion, start a recipe"
        ),
        "with `# yaml-language-server: $schema=../docs/recipe.schema.json`.",
    ]
    for name, title in SECTIONS.items():
        lines += [
            "",
            f"## {title}",
            "",
            definitions[name].get("description", ""),
            "",
            *_table(definitions[name]),
        ]
    return "\n".join(lines) + "\n"


def generated_files() -> dict[Path, str]:
    return {
        DOCS / "recipe-reference.md": render_reference(),
        DOCS / "recipe.schema.json": json.dumps(recipe_json_schema(), indent=2) + "\n",
    }


if __name__ == "__main__":
    for path, text in generated_files().items():
        write_text_atomically(path, text)
        print(f"wrote {path}")
