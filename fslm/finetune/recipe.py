"""Pydantic models of a fine-tuning recipe (`finetune/*.yaml`).

The field descriptions double as the recipe reference in docs/finetuning.md (see `reference.py`), so they are
written for users. CLI flags of `fslm finetune` carry the same names as the `train` keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from fslm.errors import FslmError
from fslm.eval.metrics import MetricName
from fslm.spec.models import MAX_SEED
from fslm.spec.paths import resolve_path


def _from_recipe_dir(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None:
        return path
    try:
        return resolve_path(path, Path(base))
    except FslmError as error:
        raise ValueError(str(error)) from None


# A path written relative to the recipe file; `load_recipe` makes it absolute.
RecipePath = Annotated[Path, AfterValidator(_from_recipe_dir)]


class RecipeModel(BaseModel):
    # allow_inf_nan: `.inf` or `.nan` is never a sensible rate, rank or fraction
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TargetSpec(RecipeModel):
    """The stage to tune. Its base model, prompt template and chat template are taken from the pipeline."""

    pipeline: RecipePath = Field(description="Pipeline YAML file, relative to the recipe file.")
    stage: str = Field(description="Name of the stage to tune.", min_length=1)


class DatasetSource(RecipeModel):
    """Examples from a file: JSONL, CSV or Parquet, or a directory written by `datasets`' `save_to_disk`."""

    path: RecipePath = Field(
        description="The data file or `datasets` directory, relative to the recipe file."
    )
    split: str | None = Field(
        None, description="For a `datasets` directory holding a DatasetDict: the split to read."
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Template variable → the record field that holds it, for variables whose field has another name. "
            "Variables not listed are read from the field of the same name."
        ),
    )
    target: str = Field("target", description="The record field holding the text the stage should write.")
    limit: int | None = Field(
        None, ge=1, description="Only the file's first this many records (train on a slice of a large set)."
    )


class MetricFilter(RecipeModel):
    """Keep a run only when its final output scores at least `min_score` against a reference answer."""

    references: RecipePath = Field(
        description="JSONL file of `{input, answer}` records (relative to the recipe file): the reference of "
        "each run's input. Runs whose input has no reference are dropped."
    )
    metric: MetricName = Field(description="How the run's output is scored against the reference.")
    min_score: float = Field(1.0, ge=0.0, le=1.0, description="Lowest score a kept run may have.")
    answer: str = Field("answer", description="The reference field in `references`.")


class RunsSource(RecipeModel):
    """Examples from recorded runs: the stage's template variables and the text it wrote, run by run."""

    store: RecipePath | None = Field(
        None, description="Run store file (relative to the recipe file); default: $FSLM_STORE or the user's."
    )
    pipeline: RecipePath | None = Field(
        None,
        description="Only runs of this pipeline file (relative to the recipe file); default: the target's.",
    )
    stage: str | None = Field(
        None, description="The recorded stage to learn from; default: the target stage."
    )
    limit: int | None = Field(None, ge=1, description="At most this many of the latest finished runs.")
    filter: MetricFilter | None = Field(None, description="Keep only runs whose output scores well enough.")


class TeacherSource(RecipeModel):
    """A teacher writes the targets: each input runs through a teacher pipeline (its stages named as the
    target pipeline's), and the target stage is trained on the teacher's texts for that stage."""

    model: str | None = Field(
        None,
        description="A model source (as in a pipeline's `models`): the target pipeline itself, with every "
        "model handle on this model and no adapters, is the teacher.",
    )
    pipeline: RecipePath | None = Field(
        None, description="A teacher pipeline file (relative to the recipe file) instead of `model`."
    )
    inputs: RecipePath = Field(
        description="JSONL, CSV or Parquet file of inputs, relative to the recipe file."
    )
    field: str = Field("input", description="The field of `inputs` holding each input text.")
    store: RecipePath | None = Field(
        None, description="Run store the teacher's runs are recorded in (default: $FSLM_STORE or the user's)."
    )
    batch_size: int = Field(16, ge=1, description="Most teacher requests in one forward pass.")

    @model_validator(mode="after")
    def _one_teacher(self) -> TeacherSource:
        if (self.model is None) == (self.pipeline is None):
            raise ValueError("a teacher needs exactly one of 'model' or 'pipeline'")
        return self


class DataSpec(RecipeModel):
    """Where the examples come from: exactly one of `dataset`, `from_runs` or `teacher`."""

    dataset: DatasetSource | None = Field(None, description="A data file or `datasets` directory.")
    from_runs: RunsSource | None = Field(None, description="Recorded runs of a pipeline stage.")
    teacher: TeacherSource | None = Field(None, description="Targets written by a teacher model or pipeline.")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [name for name in ("dataset", "from_runs", "teacher") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "data needs exactly one of 'dataset', 'from_runs' or 'teacher'"
                + (f" (it has {', '.join(given)})" if given else "")
            )
        return self

    @property
    def source(self) -> DatasetSource | RunsSource | TeacherSource:
        chosen = self.dataset or self.from_runs or self.teacher
        assert chosen is not None
        return chosen


class LoraSpec(RecipeModel):
    """The LoRA adapter's shape (peft `LoraConfig`)."""

    r: int = Field(16, ge=1, le=1024, description="Rank of the low-rank update.")
    alpha: float = Field(32.0, gt=0, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input during training.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="Module names to adapt (e.g. `[q_proj, v_proj]`), or `all-linear` for every linear layer "
        "except the output layer.",
    )


class TrainSpec(RecipeModel):
    """Optimisation settings. Give `epochs` or `max_steps` (neither: one epoch); with both, training stops at whichever comes first."""  # noqa: E501 (the text is the schema description, one line)

    epochs: float | None = Field(
        None, gt=0, description="Passes over the training split (1 when `max_steps` is not given either)."
    )
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to take.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW).")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate decay after warmup."
    )
    warmup_steps: int = Field(0, ge=0, description="Steps of linear warmup from 0.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Examples per micro-batch (examples of similar length).")
    gradient_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = Field(
        1024,
        ge=8,
        description="Longest prompt + completion in tokens; longer examples "
        "are dropped (and counted in the training record).",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the adapter's initialisation and the data order (64 bits)."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Weight dtype during training (the adapter is saved in float32)."
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations during the backward pass: much less memory, about a third more "
        "compute (TRL's SFTTrainer does this by default).",
    )
    checkpoint_every: int = Field(50, ge=1, description="Steps between resumable checkpoints.")
    log_every: int = Field(1, ge=1, description="Steps between recorded training losses.")

    @model_validator(mode="before")
    @classmethod
    def _one_epoch_unless_told(cls, data: Any) -> Any:
        # A default of one epoch would cap a recipe that gives only `max_steps` at one epoch's steps.
        if isinstance(data, dict) and "epochs" not in data and data.get("max_steps") is None:
            return {**data, "epochs": 1.0}
        return data

    @model_validator(mode="after")
    def _has_a_length(self) -> TrainSpec:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("train needs 'epochs' or 'max_steps'")
        return self


class EvalSpec(RecipeModel):
    """The held-out evaluation, run before training and at the end (its loss also every `every` steps)."""

    split: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of the examples held out (0: none).")
    data: DataSpec | None = Field(
        None, description="A separate held-out source (same forms as `data`) instead of `split`."
    )
    metric: MetricName | Literal["loss"] = Field(
        "loss",
        description=(
            "`loss`: completion loss on the held-out examples. A text metric (choice, exact, numeric, "
            "contains, f1) also generates the stage's text for each held-out example and scores it "
            "against the example's target."
        ),
    )
    every: int | None = Field(None, ge=1, description="Steps between held-out loss evaluations.")
    max_items: int = Field(100, ge=1, description="Most held-out examples to evaluate.")


class Recipe(RecipeModel):
    """A fine-tuning recipe: which stage, on which data, with which adapter and settings, written where."""

    target: TargetSpec = Field(description="The pipeline and stage to tune.")
    data: DataSpec = Field(description="Where the training examples come from.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="The adapter's shape.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Optimisation settings.")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="Held-out evaluation.")
    output: RecipePath = Field(description="Adapter directory to write, relative to the recipe file.")
