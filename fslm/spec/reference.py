"""The YAML reference in docs/, generated from the pydantic models' JSON Schema so it cannot drift.

Regenerate with `python -m fslm.spec.reference` (a test fails when the committed files are stale).
"""

import json
from pathlib import Path
from typing import Any

from fslm.spec.kinds import node_kinds
from fslm.spec.schema import pipeline_json_schema, stage_file_json_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"
STAGE_SECTIONS = {
    "PipelineFileSpec": "Pipeline file (top level)",
    "ModelSpec": "`models.<handle>`",
    "StageEntrySpec": "`stages.<name>` (and `stages/NAME.yaml`, without `use`)",
    "GenerationSpec": "`stages.<name>.generation`",
}
WIRING_SECTIONS = {
    "EdgeSpec": "`edges[]`",
    "Case": "`edges[].when[]`",
}


def _kinds_table() -> list[str]:
    rows = ["| key | kind | what the stage does |", "|---|---|---|"]
    rows += [f"| `{key}` | {kind.name} | {kind.description} |" for key, kind in node_kinds().items()]
    return rows


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"mapping of name → {_type(schema['additionalProperties'])}"
    return {
        "string": "string",
        "integer": "integer",
        "number": "number",
        "boolean": "boolean",
        "null": "null",
    }.get(kind, kind)


def _bounds(schema: dict[str, Any]) -> str:
    marks = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
    options = schema.get("anyOf", [schema])
    return ", ".join(
        f"{mark} {option[key]}" for option in options for key, mark in marks.items() if key in option
    )


def _default(schema: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in schema:
        return ""
    return f"`{json.dumps(schema['default'])}`"


def _table(schema: dict[str, Any]) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for key, field in schema.get("properties", {}).items():
        kind = _type(field) + (f" ({_bounds(field)})" if _bounds(field) else "")
        description = field.get("description", "").replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {_default(field, key in required)} | {description} |")
    return rows


def _section(title: str, definition: dict[str, Any]) -> list[str]:
    return ["", f"## {title}", "", definition.get("description", ""), "", *_table(definition)]


def render_reference() -> str:
    schema = pipeline_json_schema()
    definitions = {"PipelineFileSpec": schema, **schema["$defs"]}
    lines = [
        "# Pipeline YAML reference",
        "",
        "Generated from fslm's pydantic models by `python -m fslm.spec.reference`; do not edit by hand.",
        (
            "Every key is checked by `fslm validate` before any model loads. "
            "The same rules as JSON Schema are in"
        ),
        (
            "[`pipeline.schema.json`](pipeline.schema.json) and [`stage.schema.json`](stage.schema.json): "
            "point your"
        ),
        "editor at them for completion, e.g. with a first line",
        "`# yaml-language-server: $schema=../docs/pipeline.schema.json` in a pipeline file.",
    ]
    kind_sections = {name: title for kind in node_kinds().values() for name, title in kind.reference.items()}
    for name, title in STAGE_SECTIONS.items():
        lines += _section(title, definitions[name])
        if name == "StageEntrySpec":
            lines += ["", "A stage is one kind, chosen by which of these keys it holds:", "", *_kinds_table()]
    for name, title in {**kind_sections, **WIRING_SECTIONS}.items():
        lines += _section(title, definitions[name])
    return "\n".join(lines) + "\n"


def generated_files() -> dict[Path, str]:
    return {
        DOCS / "yaml-reference.md": render_reference(),
        DOCS / "pipeline.schema.json": json.dumps(pipeline_json_schema(), indent=2) + "\n",
        DOCS / "stage.schema.json": json.dumps(stage_file_json_schema(), indent=2) + "\n",
    }


if __name__ == "__main__":
    for path, text in generated_files().items():
        path.write_text(text)
        print(f"wrote {path}")
