"""`finetune(recipe)`: examples → held-out split → training → adapter directory and training record.

Every check a user's mistake can fail runs before the output directory is touched, and the finished
adapter replaces the directory without a moment when neither the old nor the new one is on disk.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.files import replace_directory, staging_directory
from fslm.finetune.encode import ChoiceEncoder, Encoded, StageEncoder, stage_encoder
from fslm.finetune.output import CHECKPOINT_DIR, RECORD_FILE, check_output, check_output_place
from fslm.finetune.recipe import DataSpec, Recipe
from fslm.finetune.sources import (
    Example,
    data_hash,
    examples_from_dataset,
    examples_from_runs,
    examples_from_teacher,
    template_variables,
)
from fslm.finetune.target import tunable_stage, tuned_model
from fslm.finetune.train import StepLog, Trainer
from fslm.nodes.choices.spec import ChoiceStageSpec
from fslm.runtime.base_identity import IDENTITY_FILE, base_identity
from fslm.spec import PipelineSpec, load_spec

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class Callbacks:
    on_teacher: Callable[[int, int], None] | None = None  # (done, total) teacher runs
    # Wraps the teacher's pipeline so that its runs go to another engine (fslm.engines); None: this process.
    teacher_engine: Callable[[Any], Any] | None = None
    on_start: Callable[[int, int, int], None] | None = (
        None  # (total steps, train examples, held-out examples)
    )
    on_step: Callable[[StepLog], None] | None = None
    on_status: Callable[[str], None] | None = None


@dataclass(frozen=True)
class FinetuneResult:
    output: Path
    record: dict[str, Any]


def target_spec(recipe: Recipe) -> PipelineSpec:
    spec = load_spec(recipe.target.pipeline)
    stage = tunable_stage(spec, recipe.target.stage)
    if isinstance(stage, ChoiceStageSpec) and recipe.eval.metric != "loss":
        raise FslmError(
            f"stage '{recipe.target.stage}' is a choices stage: it picks an option rather than writing text, "
            f"so eval.metric {recipe.eval.metric!r} does not apply; its held-out evaluation here is the loss "
            "(`fslm eval` measures how often it picks right)"
        )
    return spec


def files_read(recipe: Recipe) -> list[Path]:
    """Every file the recipe names apart from its output: the output must never be a directory holding one."""
    found: list[Path] = []

    def collect(value: Any) -> None:
        if isinstance(value, Path):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    collect(recipe.model_dump(exclude={"output"}))
    return found


def collect_examples(
    data: DataSpec,
    spec: PipelineSpec,
    stage: str,
    on_teacher: Callable[[int, int], None] | None = None,
    teacher_engine: Callable[[Any], Any] | None = None,
) -> list[Example]:
    variables = template_variables(spec, stage)
    if data.dataset is not None:
        tuned = spec.stages[stage]
        choices = tuned if isinstance(tuned, ChoiceStageSpec) else None
        examples = examples_from_dataset(data.dataset, variables, choices)
    elif data.from_runs is not None:
        examples = examples_from_runs(data.from_runs, spec, stage, variables)
    else:
        assert data.teacher is not None
        examples = examples_from_teacher(data.teacher, spec, stage, variables, on_teacher, teacher_engine)
    if not examples:
        raise FslmError(f"the data for stage '{stage}' holds no examples")
    return examples


def held_out_split(recipe: Recipe, examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """Training and held-out examples: a seeded random `eval.split` of the data, unless `eval.data` is
    given."""
    if recipe.eval.data is not None:
        return examples, []
    order = list(range(len(examples)))
    random.Random(recipe.train.seed).shuffle(order)
    held = min(round(len(examples) * recipe.eval.split), recipe.eval.max_items)
    if held and held >= len(examples):
        raise FslmError(f"eval.split {recipe.eval.split} leaves no training examples out of {len(examples)}")
    return [examples[i] for i in order[held:]], [examples[i] for i in order[:held]]


def fingerprint(recipe: Recipe, train_hash: str) -> str:
    """What a checkpoint or finished adapter must share with this run to be continued or kept."""
    settings = recipe.model_dump(
        mode="json", exclude={"output": True, "train": {"checkpoint_every", "log_every"}}
    )
    return hashlib.sha256(json.dumps([settings, train_hash], sort_keys=True).encode()).hexdigest()


def finetune(
    recipe: Recipe,
    *,
    resume: bool = False,
    force: bool = False,
    callbacks: Callbacks | None = None,
    recipe_file: Path | None = None,
) -> FinetuneResult:
    """Train the recipe's adapter. `recipe_file`, the file the recipe came from, is never in the output."""
    callbacks = callbacks or Callbacks()
    started = time.time()
    status = callbacks.on_status or (lambda message: None)
    spec = target_spec(recipe)
    check_output_place(recipe.output, [*files_read(recipe), *([recipe_file] if recipe_file else [])])
    stage_name = recipe.target.stage
    stage = tunable_stage(spec, stage_name)
    train_examples, eval_examples = held_out_split(
        recipe,
        collect_examples(recipe.data, spec, stage_name, callbacks.on_teacher, callbacks.teacher_engine),
    )
    if recipe.eval.data is not None:
        eval_examples = collect_examples(recipe.eval.data, spec, stage_name)[: recipe.eval.max_items]
    train_hash = data_hash(train_examples)
    run_fingerprint = fingerprint(recipe, train_hash)
    check_output(recipe.output, run_fingerprint, force, resume)

    from fslm.finetune.model import load_base, with_new_adapter
    from fslm.runtime import prepare

    model_spec = tuned_model(spec, stage)
    status(f"loading {model_spec.source}")
    base_dir = prepare(model_spec.source, model_spec.revision)
    tokenizer, base = load_base(base_dir, recipe.train.dtype, model_spec.device)
    identity = base_identity(base, model_spec.source)
    encoder = stage_encoder(stage_name, stage, tokenizer)
    train_set, too_long = _fitting(encoder, train_examples, recipe.train.max_length)
    eval_set, _ = _fitting(encoder, eval_examples, recipe.train.max_length)
    if not train_set:
        raise FslmError(
            f"none of the {len(train_examples)} training examples fits in train.max_length = "
            f"{recipe.train.max_length} tokens"
        )
    model = with_new_adapter(base, recipe.lora, recipe.train.seed, recipe.train.gradient_checkpointing)
    # Padding is masked out of attention and loss, so any id does.
    pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    trainer = Trainer(model, train_set, eval_set, recipe.train, pad_id, recipe.eval.every)
    if callbacks.on_start:
        callbacks.on_start(trainer.total_steps, len(train_set), len(eval_set))
    progress = trainer.run(recipe.output / CHECKPOINT_DIR, run_fingerprint, resume, callbacks.on_step)
    record = {
        "recipe": recipe.model_dump(mode="json"),
        "fingerprint": run_fingerprint,
        "data_hash": train_hash,
        "examples": {"train": len(train_set), "eval": len(eval_set), "too_long": too_long},
        "base": identity,
        "steps": progress.losses,
        "eval_loss": progress.eval_losses,
        "resumed_at_steps": progress.resumed_at,
        "train_seconds": round(progress.seconds, 2),
        "train_tokens": progress.tokens,
        "tokens_per_second": round(progress.tokens / max(progress.seconds, 1e-9), 1),
    }
    staging = _write_staging(recipe.output, model, identity)
    if recipe.eval.metric != "loss" and eval_examples:
        from fslm.finetune.stage_eval import metric_before_after

        status(f"scoring the held-out examples ({recipe.eval.metric}) before and after")
        record["metric"] = metric_before_after(spec, stage_name, eval_examples, recipe.eval.metric, staging)
    record["wall_seconds"] = round(time.time() - started, 2)
    (staging / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    replace_directory(recipe.output)
    return FinetuneResult(recipe.output, record)


def _fitting(
    encoder: StageEncoder | ChoiceEncoder, examples: list[Example], max_length: int
) -> tuple[list[Encoded], int]:
    encoded = [encoder.encode(example) for example in examples]
    kept = [item for item in encoded if len(item) <= max_length]
    return kept, len(encoded) - len(kept)


def _write_staging(output: Path, model: Any, identity: dict[str, Any]) -> Path:
    staging = staging_directory(output)
    model.save_pretrained(staging, safe_serialization=True)
    (staging / "README.md").unlink(missing_ok=True)  # peft's model-card stub; the training record says more
    (staging / IDENTITY_FILE).write_text(json.dumps(identity, indent=1) + "\n")
    return staging
