"""The sandbox prompt templates render in: no Python internals, no other files, bounded time and memory.

Jinja2's `ImmutableSandboxedEnvironment` already refuses underscore attributes, unsafe callables and
changes to lists and dicts at render time. On top of it, templates with a construct of `template_rules` are
refused when compiled, the globals are only a bounded `range`, and each rendering has a budget:
- at most MAX_LOOP_STEPS loop iterations and MAX_SECONDS of time (checked at every loop step, filter,
  method call and operator);
- at most MAX_CHARACTERS characters (or items) built by filters, methods, `~`, `+`, `*` and `**`, and
  output. An operation whose result could not fit is refused before it runs, from an upper bound on its
  size; numbers passed to filters and methods are at most MAX_NUMBER, so that bound stays small.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from fslm.spec.template_rules import MAX_RANGE, REMOVED_GLOBALS, forbidden_constructs

MAX_LOOP_STEPS = 100_000  # loop iterations in one rendering, all loops together
MAX_SECONDS = 10.0  # one rendering; a prompt takes milliseconds
MAX_NUMBER = 100_000  # largest number a template passes to a filter or method
MAX_CHARACTERS = 50_000_000  # characters (or items) one rendering may build and output, all together

_LOOP_FILTER = "fslm_loop_step"
_JOIN_FILTER = "fslm_join"


class _Budget:
    def __init__(self) -> None:
        self.loop_steps = 0
        self.characters = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def check(self, characters: int, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"the template took more than {MAX_SECONDS:g} seconds to render")
        if self.characters + characters > MAX_CHARACTERS:
            raise SecurityError(
                f"{what} would take the template past {MAX_CHARACTERS:,} characters, the most one rendering "
                "may build"
            )

    def spend(self, characters: int, what: str) -> None:
        self.check(characters, what)
        self.characters += characters

    def step(self) -> None:
        self.loop_steps += 1
        if self.loop_steps > MAX_LOOP_STEPS:
            raise SecurityError(f"the template's loops ran more than {MAX_LOOP_STEPS:,} steps")
        self.check(0, "a loop step")


_current_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("fslm_template_budget")


def _budget() -> _Budget:
    try:
        return _current_budget.get()
    except LookupError:
        # Outside a rendering: the compiler folding constants. Refusing makes it leave the work to render
        # time.
        raise SecurityError("template work outside a rendering") from None


def _size(value: Any) -> int:
    """Characters (or items) `value` holds, counting nested text: what building from it costs.

    Containers count their items' sizes (each shared item once, three levels deep)."""
    seen: set[int] = set()

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str | bytes):
            return len(item)
        if isinstance(item, int) and not isinstance(item, bool):
            return item.bit_length() // 3 + 1  # about its decimal digits
        if depth > 3 or id(item) in seen or not isinstance(item, list | tuple | set | frozenset | dict):
            return 1
        seen.add(id(item))
        items = [*item, *item.values()] if isinstance(item, dict) else item
        return len(item) + sum(size(member, depth + 1) for member in items)

    return size(value, 0)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _estimate(subject: Any, arguments: list[Any]) -> int:
    """An upper bound on what a filter or method builds from `subject` with `arguments`: text arguments can
    repeat for every character (join, replace), numbers can pad every line or tab (indent, expandtabs)."""
    numbers = [abs(argument) for argument in arguments if _is_number(argument)]
    if any(number > MAX_NUMBER for number in numbers):
        raise SecurityError(f"templates may not pass numbers above {MAX_NUMBER:,} to filters or methods")
    texts = [_size(argument) for argument in arguments if not _is_number(argument)]
    breaks = subject.count("\n") + subject.count("\t") if isinstance(subject, str) else 0
    return (_size(subject) + 1) * (1 + max(texts, default=0)) + int(max(numbers, default=0)) * (1 + breaks)


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
        listed = _listed(args)
        kwargs = dict(zip(kwargs, _listed(kwargs.values()), strict=True))
        subject, *rest = listed[1:] if passes_first else listed
        arguments = [*rest, *kwargs.values()]
        if name == "sum" and not all(map(_is_number, arguments)):
            raise SecurityError("the filter 'sum' adds numbers only")  # adding lists one by one takes n² time
        return _guarded(
            f"the filter '{name}'", lambda: function(*listed, **kwargs), _estimate(subject, arguments)
        )

    return guarded


def _loop_step(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _join(values: list[Any]) -> str:
    """What `a ~ b ~ c` builds, refused before it is built when it cannot fit."""
    budget = _budget()
    budget.check(sum(map(_size, values)), "joining text with '~'")
    text = "".join(map(str, values))
    budget.spend(len(text), "joining text with '~'")
    return text


def _bounded_range(*args: int) -> range:
    items = range(*args)
    if items[MAX_RANGE:]:  # a slice, not len(): len() fails past sys.maxsize
        raise SecurityError(f"range(...) may have at most {MAX_RANGE:,} items")
    return items


class _Guards(NodeTransformer):
    """Count every loop step against the rendering's budget, and check every `~` join before it is built."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        joined = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(joined, _JOIN_FILTER, [], [], None, None, lineno=node.lineno)


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
        self.filters[_JOIN_FILTER] = _join

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
        if operator == "%" and isinstance(left, str | bytes):
            raise SecurityError("templates cannot format strings with '%'")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            digits = max(abs(left).bit_length() - 1, 0) * right // 3  # 0 for 0, 1 and -1, whatever the power
            return _guarded("'**'", lambda: calculate(left, right), digits)
        if operator == "*" and isinstance(left, int) != isinstance(right, int):
            repeated, times = (right, left) if isinstance(left, int) else (left, right)
            return _guarded("'*'", lambda: calculate(left, right), _size(repeated) * max(times, 0))
        return _guarded(f"'{operator}'", lambda: calculate(left, right), _size(left) + _size(right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None

        def refuse(*args: Any, **kwargs: Any) -> str:
            raise SecurityError("templates cannot call str.format or str.format_map")

        return refuse

    def concat(self, pieces: Iterable[str]) -> str:
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
