"""Prompt templates: the one Jinja2 environment fslm renders them with, and static checks of them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import jinja2
from jinja2 import meta, nodes


@cache
def template_environment() -> jinja2.Environment:
    """The environment every layer renders prompts with: undefined variables fail, text is not escaped."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class TemplateSyntaxProblem:
    line: int  # 1-based, inside the template text
    message: str


@dataclass(frozen=True)
class TemplateVariable:
    name: str
    line: int  # 1-based line inside the template text where it is first used


@dataclass(frozen=True)
class CheckedTemplate:
    syntax_problem: TemplateSyntaxProblem | None
    free_variables: tuple[TemplateVariable, ...]  # read but not defined by the template or as a global


def check_template(source: str) -> CheckedTemplate:
    environment = template_environment()
    try:
        tree = environment.parse(source)
        environment.compile(tree)  # compiling finds unknown filters and tests, which parsing does not
    except jinja2.TemplateSyntaxError as error:
        return CheckedTemplate(TemplateSyntaxProblem(error.lineno, error.message or "invalid template"), ())
    undeclared = meta.find_undeclared_variables(tree) - set(environment.globals)
    first_line: dict[str, int] = {}
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load" and name_node.name in undeclared:
            first_line[name_node.name] = min(
                name_node.lineno, first_line.get(name_node.name, name_node.lineno)
            )
    variables = sorted(
        (TemplateVariable(name, first_line.get(name, 1)) for name in undeclared),
        key=lambda v: (v.line, v.name),
    )
    return CheckedTemplate(None, tuple(variables))
