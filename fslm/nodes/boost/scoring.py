"""How `fslm eval` scores a boost stage with `choices`: as the choice stage it runs, its members weighted
by α."""

from __future__ import annotations

from collections.abc import Mapping

from fslm.nodes.boost.spec import BoostStageSpec
from fslm.nodes.choices.scoring import choice_stage_output
from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.models import StageSpecBase


def boost_choice_output(
    name: str, stage: StageSpecBase, stages: Mapping[str, StageSpecBase]
) -> ChoiceOutput | None:
    assert isinstance(stage, BoostStageSpec)
    return None if stage.choices is None else choice_stage_output(name, stage.as_choice_stage())
