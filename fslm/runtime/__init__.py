"""The runtime layer: resolves model references, owns every model in memory, and generates in batches.

It knows nothing of LangGraph or the YAML spec. Importing this package (or `fslm.runtime.builtin`, which the
spec layer uses) does not import torch or transformers; the names that need them load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fslm.lazy import lazy_attributes
from fslm.runtime.builtin import BUILTIN_MODELS, BuiltinModel, builtin_gguf_path
from fslm.runtime.cache import CachedModel, cache_root, list_cached
from fslm.runtime.resolve import ResolvedModel, prepare, resolve_model
from fslm.runtime.types import Generation, GenerationParams, GenerationRequest, ModelRef

if TYPE_CHECKING:
    from fslm.runtime.engine import Runtime, RuntimeStats
    from fslm.runtime.loaded import BASE_ADAPTER_NAME, LoadedBase

_LAZY = {
    "Runtime": "fslm.runtime.engine",
    "RuntimeStats": "fslm.runtime.engine",
    "BASE_ADAPTER_NAME": "fslm.runtime.loaded",
    "LoadedBase": "fslm.runtime.loaded",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "BASE_ADAPTER_NAME",
    "BUILTIN_MODELS",
    "BuiltinModel",
    "CachedModel",
    "Generation",
    "GenerationParams",
    "GenerationRequest",
    "LoadedBase",
    "ModelRef",
    "ResolvedModel",
    "Runtime",
    "RuntimeStats",
    "builtin_gguf_path",
    "cache_root",
    "list_cached",
    "prepare",
    "resolve_model",
]
