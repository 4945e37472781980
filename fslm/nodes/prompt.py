"""Prompts of every node kind: a stage's template compiled once, rendered with a run's variables."""

from typing import Any

from jinja2 import Template

from fslm.graph.state import RunState
from fslm.spec.models import StageSpecBase
from fslm.spec.run_input import input_variables
from fslm.spec.templates import compile_template, render_template


def compile_prompt(stage: StageSpecBase) -> Template:
    return compile_template(stage.prompt)


def template_variables(state: RunState) -> dict[str, Any]:
    """The variables a stage's templates see: `input` for a string input, a structured input's own fields
    (which may include one named `input`), and the latest output of each stage that ran, by stage name."""
    return {**input_variables(state["input"]), **state["outputs"]}


def render_prompt(name: str, stage: StageSpecBase, template: Template, variables: dict[str, Any]) -> str:
    """The prompt text `stage` sends its model, given the run's `template_variables`."""
    prompt = render_template(template, variables, f"stage '{name}': its prompt template")
    # Block scalars end with a newline; it matters in a raw completion prompt, not in a chat message.
    return prompt.strip() if stage.chat_template else prompt
