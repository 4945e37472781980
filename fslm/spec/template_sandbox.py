"""The sandbox prompt templates run in: no Python internals, no other files, bounded work.

Jinja2's `ImmutableSandboxedEnvironment` already refuses underscore attributes and unsafe callables at
render time. On top of it:
- `forbidden_constructs` lists what a template may not contain (checked by `fslm validate` and again
  whenever the environment compiles a template): other templates (`include`, `import`, `extends`), macros
  and call blocks, recursive loops, `{% set %}…{% endset %}` and `{% filter %}` blocks, underscore names,
  `lipsum`/`cycler`/`joiner`/`namespace`, string formatting, and a constant `range` above `MAX_RANGE`.
- At render time one budget bounds the work: loop steps, and the characters that filters, methods, `~`,
  `+`, `*` and `**` build and the template outputs. An operation whose result would not fit is refused
  before it runs.
"""

from __future__ import annotations

import contextvars
import functools
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_RANGE = 10_000  # items a `range(...)` may have
MAX_LOOP_STEPS = 100_000  # loop iterations in one rendering, all loops together
MAX_NUMBER = 100_000  # largest number a template passes to a filter or method, or multiplies by
MAX_CHARACTERS = 50_000_000  # characters (or items) one rendering may build and output, all together

REMOVED_GLOBALS = ("lipsum", "cycler", "joiner", "namespace", "dict")
_REFUSED_BLOCKS: dict[type[nodes.Node], str] = {
    nodes.Include: "'include' (templates cannot read other files)",
    nodes.Import: "'import' (templates cannot read other files)",
    nodes.FromImport: "'from … import' (templates cannot read other files)",
    nodes.Extends: "'extends' (templates cannot read other files)",
    nodes.Macro: "'macro'",
    nodes.CallBlock: "'call' blocks",
    nodes.AssignBlock: "'set' blocks ({% set x %}…{% endset %}); use {% set x = … %}",
    nodes.FilterBlock: "'filter' blocks; apply the filter to an expression instead",
}
_ATTRIBUTE_ARGUMENTS = {"attribute", "attr"}
_FORMATS = ("format", "format_map")
_LOOP_FILTER = "fslm_loop_step"
_BUILT_FILTER = "fslm_built"


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
    if isinstance(node, nodes.Mod) and isinstance(node.left, nodes.Const) and isinstance(node.left.value, str):
        return "templates cannot format strings with '%'; write the text around the values instead"
    return None


def _call_refusal(node: nodes.Filter | nodes.Test | nodes.Call) -> str | None:
    if isinstance(node, nodes.Filter) and node.name == "attr" and any(map(_is_underscore_string, node.args)):
        return "templates cannot use names that start with '_'"
    if any(keyword.key in _ATTRIBUTE_ARGUMENTS and _is_underscore_string(keyword.value) for keyword in node.kwargs):
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
    if any(not isinstance(bound, int) for bound in bounds):
        return True  # a bound too large to compute
    try:
        return len(range(*bounds)) > MAX_RANGE  # type: ignore[arg-type]
    except (OverflowError, ValueError):
        return True  # OverflowError: longer than sys.maxsize; ValueError: a step of 0, refused at render too


# --- render-time budget ---------------------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.loop_steps = 0
        self.characters = 0

    def check(self, characters: int, what: str) -> None:
        if self.characters + characters > MAX_CHARACTERS:
            raise SecurityError(
                f"{what} would take the template past {MAX_CHARACTERS:,} characters, the most one rendering "
                "may build"
            )

    def spend(self, characters: int, what: str) -> None:
        self.check(characters, what)
        self.characters += characters


_current_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("fslm_template_budget")


def _budget() -> _Budget:
    try:
        return _current_budget.get()
    except LookupError:
        # Outside a rendering: the compiler folding constants. Refusing makes it leave the work to render time.
        raise SecurityError("template work outside a rendering") from None


def _size(value: Any, depth: int = 0) -> int:
    """Characters (or items) `value` holds, counting nested text: what building from it costs."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return value.bit_length() // 3 + 1  # about its decimal digits
    if depth < 3 and isinstance(value, dict):
        return len(value) + sum(_size(key, depth + 1) + _size(item, depth + 1) for key, item in value.items())
    if depth < 3 and isinstance(value, list | tuple | set | frozenset):
        return len(value) + sum(_size(item, depth + 1) for item in value)
    return 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(arguments: Iterable[Any]) -> list[int | float]:
    return [abs(value) for value in arguments if _is_number(value)]


def _estimate(subject: Any, arguments: list[Any]) -> int:
    """An upper bound on what a filter or method builds from `subject` with `arguments`.

    Text arguments can repeat (join, replace) and numbers can pad every line or tab (indent, expandtabs),
    so both multiply."""
    numbers = _numbers(arguments)
    if any(number > MAX_NUMBER for number in numbers):
        raise SecurityError(f"templates may not pass numbers above {MAX_NUMBER:,} to filters or methods")
    texts = [_size(argument) for argument in arguments if not _is_number(argument)]
    size = _size(subject)
    breaks = subject.count("\n") + subject.count("\t") if isinstance(subject, str) else 0
    return (size + 1) * (1 + max(texts, default=0)) + int(max(numbers, default=0)) * (1 + breaks)


def _guarded(what: str, function: Callable[[], Any], estimate: int) -> Any:
    """`function()`, refused when `estimate` (an upper bound on its result's size) does not fit the budget."""
    budget = _budget()
    budget.check(estimate, what)
    result = function()
    budget.spend(_size(result), what)
    return result


def _listed(values: Iterable[Any]) -> list[Any]:
    """`values` with iterators (from `map`, `select`, …) made lists, so that their size can be known."""
    return [list(value) if isinstance(value, Iterator) else value for value in values]


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes_first = getattr(function, "jinja_pass_arg", None) is not None

    @functools.wraps(function)  # keeps jinja_pass_arg, so context or environment still come first
    def guarded(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _listed(args), dict(zip(kwargs, _listed(kwargs.values()), strict=True))
        subject, *rest = args[1:] if passes_first else args
        arguments = [*rest, *kwargs.values()]
        return _guarded(f"the filter '{name}'", lambda: function(*args, **kwargs), _estimate(subject, arguments))

    return guarded


def _loop_step(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.loop_steps += 1
        if budget.loop_steps > MAX_LOOP_STEPS:
            raise SecurityError(f"the template's loops ran more than {MAX_LOOP_STEPS:,} steps")
        yield item


def _built(text: str) -> str:
    _budget().spend(len(text), "joining text with '~'")
    return text


def _bounded_range(*args: int) -> range:
    items = range(*args)
    if items[MAX_RANGE:]:  # a slice, not len(): len() fails past sys.maxsize
        raise SecurityError(f"range(...) may have at most {MAX_RANGE:,} items")
    return items


class _Guards(NodeTransformer):
    """Count every loop step and every `~` join against the rendering's budget."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        node = self.generic_visit(node)
        return nodes.Filter(node, _BUILT_FILTER, [], [], None, None, lineno=node.lineno)


class _BudgetedTemplate(jinja2.Template):
    def render(self, *args: Any, **kwargs: Any) -> str:
        token = _current_budget.set(_Budget())
        try:
            return super().render(*args, **kwargs)
        finally:
            _current_budget.reset(token)


class FslmSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True, loader=None
        )
        self.template_class = _BudgetedTemplate
        for name in REMOVED_GLOBALS:
            self.globals.pop(name, None)
        self.globals["range"] = _bounded_range
        self.filters.pop("format")
        self.filters = {name: _guard_filter(name, function) for name, function in self.filters.items()}
        self.filters[_LOOP_FILTER] = _loop_step
        self.filters[_BUILT_FILTER] = _built

    def parse_unchecked(self, source: str) -> nodes.Template:
        """The template's syntax tree as written (no guards added, no construct refused)."""
        return Parser(self, source).parse()

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = Parser(self, source, name, filename).parse()
        refused = forbidden_constructs(tree)
        if refused:
            raise TemplateSyntaxError(refused[0].message, refused[0].line, name, filename)
        guarded = _Guards().visit(tree)
        guarded.set_environment(self)
        return guarded

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        calculate = self.binop_table[operator]
        if operator == "%" and isinstance(left, str):
            raise SecurityError("templates cannot format strings with '%'")
        if operator == "**" and _is_number(left) and _is_number(right):
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                return _guarded("'**'", lambda: calculate(left, right), abs(left).bit_length() * right // 3)
            return calculate(left, right)
        if operator == "*" and (_is_number(left) != _is_number(right)):
            times = left if _is_number(left) else right
            return _guarded("'*'", lambda: calculate(left, right), _estimate(right if times is left else left, [times]))
        return _guarded(f"'{operator}'", lambda: calculate(left, right), _size(left) + _size(right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None

        def refuse(*args: Any, **kwargs: Any) -> str:
            raise SecurityError("templates cannot call str.format or str.format_map")

        return refuse

    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        """Join a rendering's output, counting it against the budget."""
        budget = _budget()
        counted = []
        for piece in pieces:
            budget.spend(len(piece), "the template's output")
            counted.append(piece)
        return "".join(counted)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            return super(FslmSandbox, self).call(context, obj, *listed, **kwargs)

        listed = _listed(args)
        if obj is _bounded_range:
            return call()
        # Jinja passes its own `_loop_vars` and `_block_vars` along; they are not the call's arguments.
        arguments = [*listed, *(value for key, value in kwargs.items() if not key.startswith("_"))]
        return _guarded("a method call", call, _estimate(getattr(obj, "__self__", None), arguments))
