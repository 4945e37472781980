"""The `shout` kind's YAML key, and its check against the pipeline's model handles."""

from typing import Any, ClassVar

from pydantic import Field

from fslm.spec.kinds import StageChecks
from fslm.spec.models import StageSpecBase


class ShoutStageSpec(StageSpecBase):
    """A stage whose model's text is upper-cased."""

    kind: ClassVar[str] = "shout"

    shout: str = Field(description="The model handle (a key of `models`) that writes the text.")
    answers: list[str] | None = Field(
        None,
        description="When set, `fslm eval` scores the stage as a pick: right when it shouts the gold answer.",
    )


def check_shout(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    handle = stage.get("shout")
    if isinstance(handle, str) and handle not in checks.model_handles:
        checks.report(("stages", name, "shout"), f"stage {name!r} shouts with unknown model {handle!r}")
