"""Prompt templates: the one Jinja2 environment fslm compiles and renders them with, and static checks of
them.

The environment is a sandbox (see `template_sandbox`): a template reads its variables and formats text; it
cannot reach Python internals, read files or run unbounded work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache

import jinja2
from jinja2 import meta, nodes

from fslm.errors import FslmError
from fslm.spec.template_rules import TemplateProblem, forbidden_constructs
from fslm.spec.template_sandbox import FslmSandbox


@cache
def template_environment() -> FslmSandbox:
    """The environment every layer renders prompts with: sandboxed, undefined variables fail, text is not
    escaped, no loader (templates cannot read files)."""
    return FslmSandbox()


@dataclass(frozen=True)
class TemplateVariable:
    name: str
    line: int  # 1-based line inside the template text where it is first used


@dataclass(frozen=True)
class CheckedTemplate:
    problems: tuple[TemplateProblem, ...]  # syntax errors and constructs templates may not use
    free_variables: tuple[TemplateVariable, ...]  # read but not defined by the template or as a global


@lru_cache(maxsize=256)  # many stages of a file share one prompt, and Jinja takes about a millisecond on each
def check_template(source: str) -> CheckedTemplate:
    try:
        return _checked(source)
    except RecursionError:  # Jinja parses and compiles recursively: `((((…` or `1+1+…` thousands deep
        message = "the template is nested too deeply (brackets, operators or blocks inside each other)"
        return CheckedTemplate((TemplateProblem(1, message),), ())


def _checked(source: str) -> CheckedTemplate:
    environment = template_environment()
    try:
        tree = environment.parse_unchecked(source)
    except jinja2.TemplateSyntaxError as error:
        return CheckedTemplate((_syntax_problem(error),), ())
    refused = forbidden_constructs(tree)
    if refused:
        return CheckedTemplate(tuple(refused), ())
    try:
        environment.compile(
            source, raw=True
        )  # generating code finds unknown filters and tests; parsing does not
    except jinja2.TemplateSyntaxError as error:
        return CheckedTemplate((_syntax_problem(error),), ())
    return CheckedTemplate((), _free_variables(tree, set(environment.globals)))


def _syntax_problem(error: jinja2.TemplateSyntaxError) -> TemplateProblem:
    return TemplateProblem(error.lineno, f"template syntax error: {error.message or 'invalid template'}")


def _free_variables(tree: nodes.Template, globals_: set[str]) -> tuple[TemplateVariable, ...]:
    undeclared = meta.find_undeclared_variables(tree) - globals_
    first_line: dict[str, int] = {}
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load" and name_node.name in undeclared:
            first_line[name_node.name] = min(
                name_node.lineno, first_line.get(name_node.name, name_node.lineno)
            )
    variables = (TemplateVariable(name, first_line.get(name, 1)) for name in undeclared)
    return tuple(sorted(variables, key=lambda variable: (variable.line, variable.name)))


def compile_template(source: str, what: str = "the prompt template") -> jinja2.Template:
    """`source` compiled in the sandbox; a template it refuses raises FslmError naming the line."""
    checked = check_template(source)
    if checked.problems:
        listed = "; ".join(f"line {problem.line}: {problem.message}" for problem in checked.problems)
        raise FslmError(f"{what} is not a valid fslm template: {listed}")
    return template_environment().from_string(source)


def render_template(
    template: jinja2.Template, variables: Mapping[str, object], what: str = "the prompt template"
) -> str:
    """`template` rendered with `variables`. Whatever the template's own expressions raise (an undefined
    variable, a refused operation, 1/0) is the template's mistake: it becomes an FslmError."""
    try:
        return template.render(**variables)
    except Exception as error:  # the template is the user's code: any failure in it is theirs
        kind = "refused" if isinstance(error, jinja2.exceptions.SecurityError) else "could not be rendered"
        raise FslmError(f"{what} {kind}: {error}") from error
