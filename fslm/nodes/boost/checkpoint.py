"""The boost checkpoint: the file `fslm finetune boost` writes next to its members' adapters, which a boost
stage reads its α from (`checkpoint: DIR`). Plain pydantic and JSON: the spec layer reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fslm.errors import FslmError

CHECKPOINT_FILE = "boost.json"
TaskKind = Literal["choices", "generate"]


class TaskFormat(BaseModel):
    """What a member was trained to do: pick an option or write text, from which prompt, in which form.
    Members that differ here answer different questions, so their probabilities do not mix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TaskKind
    prompt: str
    chat_template: bool
    continuation: str | None = None  # a choices stage's


class CheckpointMember(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str  # relative to the checkpoint directory
    alpha: float


class BoostCheckpoint(BaseModel):
    # the file also holds the recipe and the training settings, for people to read
    model_config = ConfigDict(extra="ignore", frozen=True)

    task: TaskFormat
    base: str = Field(description="the source of the members' base model")
    members: list[CheckpointMember]
    rounds: list[dict] = Field(default_factory=list)  # the training record of each round

    def adapters(self, directory: Path) -> list[Path]:
        return [(directory / member.adapter).resolve() for member in self.members]

    @property
    def alphas(self) -> list[float]:
        return [member.alpha for member in self.members]


def read_checkpoint(directory: Path) -> BoostCheckpoint:
    """The checkpoint in `directory`; FslmError when there is none or it cannot be read."""
    path = directory / CHECKPOINT_FILE
    try:
        return BoostCheckpoint.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise FslmError(
            f"{directory} holds no {CHECKPOINT_FILE}: it was not written by fslm finetune boost"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as error:
        first = str(error).splitlines()[0]
        raise FslmError(f"the boost checkpoint {path} cannot be read: {first}") from None


def task_format_of(adapter: Path) -> TaskFormat | None:
    """The task format an adapter written by fslm finetune boost records in its training record; None for
    other adapters (nothing is known of them)."""
    try:
        record = json.loads((adapter / "training.json").read_text())
        return TaskFormat.model_validate(record["task_format"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValidationError):
        return None
