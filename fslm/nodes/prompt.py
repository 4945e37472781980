"""Prompts of every node kind: a stage's template compiled once, rendered with a run's variables."""

from jinja2 import Template

from fslm.spec.models import StageSpecBase
from fslm.spec.templates import compile_template, render_template


def compile_prompt(stage: StageSpecBase) -> Template:
    return compile_template(stage.prompt)


def render_prompt(name: str, stage: StageSpecBase, template: Template, variables: dict[str, str]) -> str:
    """The prompt text `stage` sends its model, given `input` and upstream outputs by stage name."""
    prompt = render_template(template, variables, f"stage '{name}': its prompt template")
    # Block scalars end with a newline; it matters in a raw completion prompt, not in a chat message.
    return prompt.strip() if stage.chat_template else prompt
