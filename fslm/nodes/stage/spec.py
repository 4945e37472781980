"""The `stage` kind's YAML keys: one model handle and an optional LoRA adapter on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from fslm.spec.kinds import StageChecks
from fslm.spec.models import StageSpecBase
from fslm.spec.reporting import did_you_mean


class StageSpec(StageSpecBase):
    """One stage, resolved: a `use:` reference is merged in and the adapter path is absolute."""

    kind: ClassVar[str] = "stage"

    model: str = Field(description="The model handle (a key of `models`) this stage runs on.")
    adapter: Path | None = Field(
        None,
        description=(
            "A peft (LoRA) adapter directory containing adapter_config.json, relative to the directory of "
            "the file that names it."
        ),
    )


def check_stage(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    """The model handle is defined; the adapter is a peft adapter directory."""
    model = stage.get("model")
    if isinstance(model, str) and model not in checks.model_handles:
        checks.report(
            ("stages", name, "model"),
            f"stage {name!r} uses unknown model {model!r}"
            f"{did_you_mean(model, checks.model_handles, what='defined models')}",
        )
    if not checks.resolve_adapter(name, stage, ("stages", name, "adapter")):
        stage.pop("adapter", None)
