"""Importing by name, late: "module:attribute" references, and package attributes that load on first use.

Kinds and request types name their code by reference so that the layers that find them (spec, runtime) need
not import it; packages whose heavy names pull in torch export them lazily.
"""

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def load_reference(reference: str) -> Any:
    """The object a "module:attribute" reference names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports `modules[name]` when `name` is first read."""

    def attribute(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute
