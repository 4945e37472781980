"""`boost_finetune(recipe)`: the weak stage's examples → T boosting rounds → a boost directory holding the
members' adapters, their α and the record of every round (`boost.json`, read by a boost stage's
`checkpoint:`).

Every check a user's mistake can fail runs before the output is touched; the finished directory replaces
the output at once (fslm.files)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.files import kept_staging_directory, replace_directory, staging_directory
from fslm.finetune.boost.members import StageModel
from fslm.finetune.boost.recipe import BoostRecipe, WeakEnsembleSpec
from fslm.finetune.boost.rounds import BoostCallbacks, Boosted, boost_rounds
from fslm.finetune.boost.task import BoostExample, classes, read_examples
from fslm.finetune.output import check_output, check_output_place
from fslm.finetune.target import tunable_stage, tuned_model
from fslm.nodes.boost.checkpoint import CHECKPOINT_FILE, BoostCheckpoint, CheckpointMember, TaskFormat
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.spec import PipelineSpec, load_spec


@dataclass(frozen=True)
class BoostResult:
    output: Path
    checkpoint: BoostCheckpoint
    stopped: str | None


def task_format(spec: PipelineSpec, stage_name: str) -> TaskFormat:
    stage = tunable_stage(spec, stage_name)
    choices = isinstance(stage, ChoiceStageSpec)
    return TaskFormat(
        kind="choices" if choices else "generate",
        prompt=stage.prompt,
        chat_template=stage.chat_template,
        continuation=stage.continuation if isinstance(stage, ChoiceStageSpec) else None,
    )


def weak_examples(recipe: BoostRecipe, spec: PipelineSpec) -> list[BoostExample]:
    examples = read_examples(recipe.data, spec, recipe.target.stage)
    if not examples:
        raise FslmError(f"{recipe.data.path} holds no examples")
    return examples


def boost_finetune(
    recipe: BoostRecipe,
    *,
    force: bool = False,
    resume: bool = False,
    callbacks: BoostCallbacks | None = None,
    recipe_file: Path | None = None,
) -> BoostResult:
    started = time.time()
    callbacks = callbacks or BoostCallbacks()
    spec = load_spec(recipe.target.pipeline)
    task = task_format(spec, recipe.target.stage)
    check_output_place(
        recipe.output, [recipe.target.pipeline, recipe.data.path, *([recipe_file] if recipe_file else [])]
    )
    examples = weak_examples(recipe, spec)
    staging = output_staging(recipe.output, force, resume)
    if callbacks.on_status:
        model_spec = tuned_model(spec, tunable_stage(spec, recipe.target.stage))
        callbacks.on_status(f"loading {model_spec.source}")
    model = StageModel(spec, recipe.target.stage, recipe.train.dtype)
    kept = fitting_examples(model, examples, recipe.train.max_length)
    k = classes(model.stage, kept, recipe.classes)
    boosted = boost_rounds(recipe, model, kept, k, staging, task.model_dump(), callbacks, resume=resume)
    checkpoint = write_checkpoint(
        staging, recipe, model, task, boosted, k, len(examples) - len(kept), started
    )
    replace_directory(recipe.output)
    return BoostResult(recipe.output, checkpoint, boosted.stopped)


def output_staging(output: Path, force: bool, resume: bool) -> Path:
    """Where the run writes before its output is replaced: a fresh staging directory (after the overwrite
    check), or with `resume` the one an interrupted run left, its finished rounds kept (that run already
    passed the check)."""
    if resume:
        return kept_staging_directory(output)
    check_output(output, "", force, resume=False)
    return staging_directory(output)


def fitting_examples(model: StageModel, examples: list[BoostExample], max_length: int) -> list[BoostExample]:
    kept = model.fitting(examples, max_length)
    if not kept:
        raise FslmError(
            f"none of the {len(examples)} examples fits in train.max_length = {max_length} tokens"
        )
    return kept


def write_checkpoint(
    staging: Path,
    recipe: WeakEnsembleSpec,
    model: StageModel,
    task: TaskFormat,
    boosted: Boosted,
    k: int,
    too_long: int,
    started: float,
) -> BoostCheckpoint:
    checkpoint = BoostCheckpoint(
        task=task,
        base=model.source,
        members=[
            CheckpointMember(adapter=adapter.name, alpha=alpha)
            for adapter, alpha in zip(boosted.adapters, boosted.alphas, strict=True)
        ],
        rounds=boosted.rounds,
    )
    record: dict[str, Any] = checkpoint.model_dump(mode="json")
    record |= {
        "recipe": recipe.model_dump(mode="json"),
        "classes": k,
        "error_level": recipe.error,
        "examples_too_long": too_long,
        "stopped": boosted.stopped,
        "wall_seconds": round(time.time() - started, 2),
    }
    (staging / CHECKPOINT_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return checkpoint
