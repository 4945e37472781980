"""A router checkpoint's files: `router.json`, what the weights are and which experts they were trained for,
and `router.safetensors`, the weights.

Free of torch: the spec layer reads the description to refuse a checkpoint trained for other experts. The
weights are read by `fslm.runtime.router.model`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fslm.errors import FslmError

CONFIG_FILE = "router.json"
WEIGHTS_FILE = "router.safetensors"
# The encoder every router starts from unless its recipe names another (a directory).
DEFAULT_ENCODER = "all-minilm-l6-v2"


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpertEntry(_Plain):
    name: str = Field(description="The expert stage's name in the pipeline.")
    fingerprint: str = Field(
        description="sha256 of the expert's adapter files (`fslm.nodes.router.fingerprint`)."
    )
    seconds_per_call: float = Field(ge=0, description="Mean seconds per call measured while training.")


class RouterConfig(_Plain):
    """`router.json`: what the weights are and what they were trained for."""

    format: Literal["fslm-router"] = "fslm-router"
    version: Literal[1] = 1
    encoder: str = Field(description="`all-minilm-l6-v2`, or an encoder directory (absolute).")
    encoder_trained: bool = Field(description="Whether the weights file holds a fine-tuned encoder too.")
    max_length: int = Field(ge=8, description="Query tokens the encoder reads.")
    experts: list[ExpertEntry] = Field(min_length=2)
    training: dict[str, Any] = Field(default_factory=dict, description="The training summary.")

    @property
    def expert_names(self) -> list[str]:
        return [expert.name for expert in self.experts]


def read_router_config(directory: Path) -> RouterConfig:
    """The checkpoint's config; FslmError when it is missing or not a router checkpoint."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FslmError(
            f"{directory} is not a router checkpoint (no {CONFIG_FILE}); train one with "
            "`fslm finetune router RECIPE.yaml`"
        )
    try:
        return RouterConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as error:
        reason = str(error).splitlines()[0]
        raise FslmError(f"{path} is not a valid router checkpoint description: {reason}") from error
