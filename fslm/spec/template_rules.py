"""What a prompt template may not contain, found in its syntax tree (before it ever renders).

Checked by `fslm validate`, and again whenever the sandbox compiles a template: other templates (`include`,
`import`, `extends`: there is no loader), macros, call blocks and `{% block %}` (the ways a template calls
itself), recursive loops, `{% set %}…{% endset %}` and `{% filter %}` blocks (text built outside the
output's count), names starting with `_`, the globals fslm removes, string formatting, and a constant
`range` above `MAX_RANGE`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from jinja2 import nodes

MAX_RANGE = 10_000  # items a `range(...)` may have

REMOVED_GLOBALS = ("lipsum", "cycler", "joiner", "namespace", "dict")
_REFUSED_BLOCKS: dict[type[nodes.Node], str] = {
    nodes.Include: "'include' (templates cannot read other files)",
    nodes.Import: "'import' (templates cannot read other files)",
    nodes.FromImport: "'from … import' (templates cannot read other files)",
    nodes.Extends: "'extends' (templates cannot read other files)",
    nodes.Macro: "'macro'",
    nodes.CallBlock: "'call' blocks",
    nodes.Block: "'block' (there is no template to extend)",
    nodes.AssignBlock: "'set' blocks ({% set x %}…{% endset %}); use {% set x = … %}",
    nodes.FilterBlock: "'filter' blocks; apply the filter to an expression instead",
}
_ATTRIBUTE_ARGUMENTS = {"attribute", "attr"}
_FORMATS = ("format", "format_map")


@dataclass(frozen=True)
class TemplateProblem:
    line: int  # 1-based, inside the template text
    message: str


def forbidden_constructs(tree: nodes.Template) -> list[TemplateProblem]:
    """Everything in `tree` an fslm template may not use, in template order."""
    found: list[TemplateProblem] = []
    for node in tree.find_all(nodes.Node):
        message = _refusal(node)
        if message is not None:
            found.append(TemplateProblem(node.lineno, message))
    return sorted(found, key=lambda problem: problem.line)


def _refusal(node: nodes.Node) -> str | None:
    if type(node) in _REFUSED_BLOCKS:
        return f"templates cannot use {_REFUSED_BLOCKS[type(node)]}"
    if isinstance(node, nodes.For) and node.recursive:
        return "templates cannot use recursive loops"
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return f"templates cannot use names that start with '_' (here {node.attr!r})"
    if isinstance(node, nodes.Getitem) and _is_underscore_string(node.arg):
        return f"templates cannot use names that start with '_' (here {node.arg.as_const()!r})"
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in REMOVED_GLOBALS:
        return f"templates cannot use {node.name!r}: the only function they can call is 'range'"
    if isinstance(node, nodes.Filter | nodes.Test | nodes.Call):
        return _call_refusal(node)
    if (
        isinstance(node, nodes.Mod)
        and isinstance(node.left, nodes.Const)
        and isinstance(node.left.value, str | bytes)
    ):
        return "templates cannot format strings with '%'; write the text around the values instead"
    return None


def _call_refusal(node: nodes.Filter | nodes.Test | nodes.Call) -> str | None:
    if isinstance(node, nodes.Filter) and node.name == "attr" and any(map(_is_underscore_string, node.args)):
        return "templates cannot use names that start with '_'"
    if any(
        keyword.key in _ATTRIBUTE_ARGUMENTS and _is_underscore_string(keyword.value)
        for keyword in node.kwargs
    ):
        return "templates cannot use names that start with '_'"
    if isinstance(node, nodes.Filter) and node.name == "format":
        return "templates cannot use the 'format' filter; write the text around the values instead"
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr in _FORMATS:
        return f"templates cannot call '.{node.node.attr}()'; write the text around the values instead"
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range":
        bounds = [_constant_int(argument) for argument in node.args]
        constant = node.args and not node.kwargs and all(bound is not None for bound in bounds)
        if constant and _range_too_long(bounds):
            return f"range(...) here has more than {MAX_RANGE:,} items, the most a template may loop over"
    return None


def _is_underscore_string(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str) and node.value.startswith("_")


_CONSTANT_OPERATORS: dict[type[nodes.Node], Callable[[int, int], int]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Mul: operator.mul,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mod: operator.mod,
}


def _constant_int(node: nodes.Node) -> int | float | None:
    """The value of a constant integer expression such as `10**12`; inf when it is too large to compute."""
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, int) and not isinstance(node.value, bool) else None
    if isinstance(node, nodes.Neg | nodes.Pos):
        value = _constant_int(node.node)
        return None if value is None else (-value if isinstance(node, nodes.Neg) else value)
    if not isinstance(node, nodes.BinExpr):
        return None
    left, right = _constant_int(node.left), _constant_int(node.right)
    if left is None or right is None:
        return None
    if not isinstance(left, int) or not isinstance(right, int):
        return float("inf")
    if isinstance(node, nodes.Pow):
        if right < 0:
            return None
        return float("inf") if abs(left) > 1 and abs(left).bit_length() * right > 256 else left**right
    calculate = _CONSTANT_OPERATORS.get(type(node))
    if calculate is None or (right == 0 and isinstance(node, nodes.FloorDiv | nodes.Mod)):
        return None
    return calculate(left, right)


def _range_too_long(bounds: list[int | float | None]) -> bool:
    whole = [bound for bound in bounds if isinstance(bound, int)]
    if len(whole) < len(bounds):
        return True  # a bound too large to compute
    try:
        return len(range(*whole)) > MAX_RANGE
    except (OverflowError, ValueError):
        return True  # OverflowError: longer than sys.maxsize; ValueError: a step of 0, refused at render too
