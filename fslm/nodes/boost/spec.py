"""The `boost` kind's YAML keys: the `boost:` block (members and their α, or a checkpoint), the options when
the stage picks one, and the kind's checks against the pipeline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fslm.errors import FslmError
from fslm.nodes.boost.checkpoint import TaskFormat, read_checkpoint, task_format_of
from fslm.nodes.choices.spec import DEFAULT_CONTINUATION, ChoiceStageSpec, Normalize, check_choices
from fslm.nodes.members import check_members, refuse_stage_adapter
from fslm.nodes.unite.spec import EnsembleMemberSpec, EnsembleSpec
from fslm.spec.kinds import StageChecks
from fslm.spec.models import StageSpecBase
from fslm.spec.yaml_source import KeyPath

_CHOICE_KEYS = ("continuation", "normalize")
_CHOICE_FIELDS = ChoiceStageSpec.model_fields


class BoostSpec(BaseModel):
    """Weak members, each with its AdaBoost weight α, whose probabilities are mixed with weights α / Σα."""

    # NaN and infinity get a message of their own below
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    members: list[EnsembleMemberSpec] = Field(
        min_length=1, description="The members: model handles, each with an optional adapter."
    )
    alphas: list[float] | None = Field(
        None,
        description="One α (finite, > 0) per member, in member order; or give `checkpoint`.",
    )
    checkpoint: Path | None = Field(
        None,
        description=(
            "Instead of `alphas`: a directory written by `fslm finetune boost` (relative to the file that "
            "names it); its α are used, and it must have been written for these members."
        ),
    )
    top_k: int = Field(
        10,
        ge=1,
        le=1000,
        description="Members on different base models only: how many top tokens of each join the union "
        "they vote over (members on one base mix over the whole vocabulary).",
    )

    @model_validator(mode="after")
    def _alphas_fit_the_members(self) -> BoostSpec:
        if self.alphas is None:
            raise ValueError(
                "give 'alphas' (one per member) or 'checkpoint' (written by fslm finetune boost)"
            )
        if len(self.alphas) != len(self.members):
            raise ValueError(
                f"'alphas' has {len(self.alphas)} values for {len(self.members)} members; give one per member"
            )
        for number, alpha in enumerate(self.alphas, start=1):
            if not math.isfinite(alpha):
                raise ValueError(f"alpha {number} is {alpha}; every alpha must be a finite number")
            if alpha <= 0:
                raise ValueError(
                    f"alpha {number} is {alpha}; every alpha must be greater than 0 (a member of weight 0 "
                    "has no say: leave it out)"
                )
        return self

    @property
    def weights(self) -> list[float]:
        """The α normalised to sum 1: each member's share of the mixture."""
        assert self.alphas is not None  # validated
        total = sum(self.alphas)
        return [alpha / total for alpha in self.alphas]


class BoostStageSpec(StageSpecBase):
    """A stage served by an α-weighted mixture of weak members: it writes text, or picks one of `choices`."""

    kind: ClassVar[str] = "boost"

    boost: BoostSpec = Field(description="Instead of `model`: weak members and their α (see docs/boost.md).")
    # The option keys mean what they mean on a choices stage (one description for both in the reference).
    choices: str | list[str] | None = Field(None, description=_CHOICE_FIELDS["choices"].description)
    continuation: str = Field(DEFAULT_CONTINUATION, description=_CHOICE_FIELDS["continuation"].description)
    normalize: Normalize = Field("token", description=_CHOICE_FIELDS["normalize"].description)
    # None where the base field is a bool: the default depends on `choices`, so it is resolved later.
    chat_template: bool | None = Field(  # type: ignore[assignment]
        None,
        description="Wrap the prompt in the members' chat template. Default: on for text, off for `choices`.",
    )

    @model_validator(mode="after")
    def _options_as_a_choices_stage_has_them(self) -> BoostStageSpec:
        if self.choices is not None:
            try:
                self.as_choice_stage()
            except ValidationError as error:
                raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self

    @property
    def task_kind(self) -> str:
        return "generate" if self.choices is None else "choices"

    @property
    def uses_chat_template(self) -> bool:
        return self.chat_template if self.chat_template is not None else self.choices is None

    def as_choice_stage(self) -> ChoiceStageSpec:
        """The stage as a choices stage whose ensemble is the members weighted by α (with `choices` only)."""
        assert self.choices is not None
        return ChoiceStageSpec(
            system=self.system,
            chat_template=self.uses_chat_template,
            prompt=self.prompt,
            choices=self.choices,
            continuation=self.continuation,
            normalize=self.normalize,
            ensemble=EnsembleSpec(members=self.boost.members, weights=self.boost.alphas),
        )

    def task_format(self) -> TaskFormat:
        return TaskFormat(
            kind=self.task_kind,
            prompt=self.prompt,
            chat_template=self.uses_chat_template,
            continuation=self.continuation if self.choices is not None else None,
        )


def check_boost(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    """Members are defined handles with peft adapters; a checkpoint was written for these members and gives
    their α; members trained by fslm finetune boost were trained for this stage's kind of task, all alike."""
    here: KeyPath = ("stages", name)
    refuse_stage_adapter(name, stage, "boost", checks)
    if stage.get("choices") is not None:
        check_choices(name, stage, checks)
    else:
        for key in _CHOICE_KEYS:
            if key in stage:
                checks.report(
                    (*here, key), f"stage {name!r}: {key!r} applies only to a boost stage with 'choices'"
                )
    adapters = check_members(name, stage, "boost", checks)
    if adapters is None:
        return
    kind = "generate" if stage.get("choices") is None else "choices"
    if stage["boost"].get("checkpoint") is not None:
        _read_alphas(name, stage["boost"], adapters, kind, checks)
    _check_formats(name, adapters, kind, checks)


def _read_alphas(
    name: str, boost: dict[str, Any], adapters: list[Path | None], kind: str, checks: StageChecks
) -> None:
    path: KeyPath = ("stages", name, "boost", "checkpoint")
    if boost.get("alphas") is not None:
        checks.report(path, f"stage {name!r}: give 'alphas' or 'checkpoint', not both")
        return
    directory = checks.resolve_directory(name, boost, "checkpoint", path)
    if directory is None:
        return
    try:
        checkpoint = read_checkpoint(directory)
    except FslmError as error:
        checks.report(path, f"stage {name!r}: {error}")
        return
    written_for = checkpoint.adapters(directory)
    if [adapter.resolve() if adapter else None for adapter in adapters] != written_for:
        checks.report(
            path,
            f"stage {name!r}: the checkpoint {directory} was written for other members: its members' "
            f"adapters are {', '.join(str(adapter) for adapter in written_for)}, in that order",
        )
        return
    if checkpoint.task.kind != kind:
        checks.report(path, f"stage {name!r}: {_kind_mismatch(checkpoint.task.kind, kind)}")
        return
    boost["alphas"] = checkpoint.alphas


def _check_formats(name: str, adapters: list[Path | None], kind: str, checks: StageChecks) -> None:
    formats = {index: task_format_of(adapter) for index, adapter in enumerate(adapters) if adapter}
    known = {index: found for index, found in formats.items() if found is not None}
    members: KeyPath = ("stages", name, "boost", "members")
    for index, found in known.items():
        if found.kind != kind:
            checks.report(
                (*members, index), f"stage {name!r}: member {index + 1}: {_kind_mismatch(found.kind, kind)}"
            )
            return
    if len(set(known.values())) > 1:
        first, *others = known
        differing = [index + 1 for index in others if known[index] != known[first]]
        checks.report(
            members,
            f"stage {name!r}: the members' task formats differ: member {first + 1} was trained with "
            "another prompt, chat template or continuation than member(s) "
            f"{', '.join(map(str, differing))}, so their probabilities answer different questions",
        )


def _kind_mismatch(trained: str, kind: str) -> str:
    words = {"choices": "picking an option (a stage with 'choices')", "generate": "writing text"}
    return f"it was trained for {words[trained]}, but this stage is for {words[kind]}"
