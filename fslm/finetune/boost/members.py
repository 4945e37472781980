"""Training and measuring weak members on one base model: a fresh LoRA adapter per member, trained by the
adapter trainer with per-example loss weights, measured by teacher-forced forward passes, then unloaded."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslm.finetune.boost.measure import TokenResults, option_probabilities, token_results
from fslm.finetune.boost.task import BoostExample, encode_gold, encode_options
from fslm.finetune.encode import ChoiceEncoder, stage_encoder
from fslm.finetune.model import load_base, with_new_adapter
from fslm.finetune.recipe import LoraSpec, TrainSpec
from fslm.finetune.target import tunable_stage, tuned_model
from fslm.finetune.train import Progress, StepLog, Trainer
from fslm.runtime.base_identity import IDENTITY_FILE, base_identity
from fslm.spec import PipelineSpec


@dataclass(frozen=True)
class Measured:
    """A member on a set of examples: option probabilities (choices stages; else None) and, per example,
    the gold answer's teacher-forced token results."""

    probabilities: list[list[float]] | None
    gold: list[TokenResults]

    def mistakes(self, examples: Sequence[BoostExample], level: str) -> list[float]:
        """Per example, 1.0 or 0.0 at `sample` level (the pick, or the whole greedy answer, is wrong), or the
        fraction of gold tokens that are not the argmax at `token` level."""
        if level == "token":
            return [1 - sum(result.hits) / len(result.hits) for result in self.gold]
        if self.probabilities is None:
            return [float(not all(result.hits)) for result in self.gold]
        return [
            float(max(range(len(row)), key=lambda i: (row[i], -i)) != item.gold)
            for row, item in zip(self.probabilities, examples, strict=True)
        ]


class StageModel:
    """One stage's base model, loaded once, on which members are trained and measured one at a time."""

    def __init__(self, spec: PipelineSpec, stage_name: str, dtype: str) -> None:
        from fslm.runtime import prepare

        self.stage = stage = tunable_stage(spec, stage_name)
        model = tuned_model(spec, stage)
        self.source = model.source
        self.tokenizer, self.base = load_base(prepare(model.source, model.revision), dtype)
        self.identity = base_identity(self.base, self.source)
        self.encoder = stage_encoder(stage_name, stage, self.tokenizer)
        tokenizer = self.tokenizer
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)

    def fitting(self, examples: list[BoostExample], max_length: int) -> list[BoostExample]:
        """The examples whose longest answer fits in `max_length` tokens with the prompt."""
        if isinstance(self.encoder, ChoiceEncoder):
            lengths = [max(map(len, options)) for options in encode_options(self.encoder, examples)]
        else:
            lengths = [len(encoded) for encoded in encode_gold(self.encoder, examples)]
        return [item for item, length in zip(examples, lengths, strict=True) if length <= max_length]

    def train(
        self,
        examples: list[BoostExample],
        weights: Sequence[float] | None,
        lora: LoraSpec,
        train: TrainSpec,
        on_step: Callable[[StepLog], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> tuple[Any, Progress]:
        """A new adapter trained on `examples`, each example's loss scaled by its weight (None: all 1)."""
        model = with_new_adapter(self.base, lora, train.seed, train.gradient_checkpointing)
        encoded = encode_gold(self.encoder, examples)
        scaled = None if weights is None else [w * len(weights) / sum(weights) for w in weights]
        trainer = Trainer(model, encoded, [], train, self.pad_id, None, sample_weights=scaled)
        if on_start:
            on_start(trainer.total_steps)
        with tempfile.TemporaryDirectory(prefix="fslm-boost-") as checkpoints:
            progress = trainer.run(Path(checkpoints), "boost", resume=False, on_step=on_step)
        return model, progress

    def measure(
        self, model: Any, examples: list[BoostExample], batch_size: int, tokens: bool = True
    ) -> Measured:
        """The model on `examples`: a choices stage's option probabilities, and (with `tokens`, or for a
        text stage) the gold answers' teacher-forced token results."""
        choice = isinstance(self.encoder, ChoiceEncoder)
        gold = []
        if tokens or not choice:
            gold = token_results(model, encode_gold(self.encoder, examples), batch_size, self.pad_id)
        if not isinstance(self.encoder, ChoiceEncoder):
            return Measured(None, gold)
        options = encode_options(self.encoder, examples)
        normalize = self.encoder.stage.normalize
        return Measured(
            option_probabilities(model, options, examples, normalize, batch_size, self.pad_id), gold
        )

    def save(self, model: Any, directory: Path, record: dict[str, Any]) -> None:
        model.save_pretrained(directory, safe_serialization=True)
        (directory / "README.md").unlink(missing_ok=True)  # peft's model-card stub
        (directory / IDENTITY_FILE).write_text(json.dumps(self.identity, indent=1) + "\n")
        (directory / "training.json").write_text(json.dumps(record, indent=1) + "\n")

    def release(self, model: Any) -> None:
        """Take the member's adapter off the base, so the next member starts from the plain base."""
        restored = model.unload()
        if restored is not self.base:
            raise RuntimeError("peft returned another model when unloading an adapter")
