"""The training loop: length-batched micro-batches, gradient accumulation, checkpoints, resume, Ctrl-C."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, get_origin, get_type_hints

import torch

from fslm.finetune.batching import collate, epoch_batches
from fslm.finetune.checkpoint import load_checkpoint, save_checkpoint
from fslm.finetune.encode import Encoded
from fslm.finetune.model import completion_loss
from fslm.finetune.recipe import TrainSpec

SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


@dataclass
class StepLog:
    step: int
    total_steps: int
    loss: float  # mean per completion token over the step
    learning_rate: float
    tokens: int  # prompt and completion tokens in the step, padding excluded
    tokens_per_second: float  # over the whole run so far


@dataclass
class Progress:
    """How far training got; saved in every checkpoint and copied into the training record."""

    fingerprint: str
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[dict] = field(default_factory=list)
    eval_losses: list[dict] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)


def _classes(hint: Any) -> tuple[type, ...]:
    """What a value of the type `hint` is checked against: an int is a float too, `list[dict]` a list."""
    return (int, float) if hint is float else (get_origin(hint) or hint,)


# What a checkpoint's saved progress must hold, key by key.
PROGRESS_TYPES = {name: _classes(hint) for name, hint in get_type_hints(Progress).items()}


class Interrupted(Exception):
    """Ctrl-C stopped training after a completed step; the checkpoint holds everything to resume."""

    def __init__(self, checkpoint: Path, step: int) -> None:
        super().__init__(f"interrupted after step {step}; checkpoint saved in {checkpoint}")
        self.checkpoint = checkpoint
        self.step = step


def total_steps(examples: int, spec: TrainSpec) -> int:
    steps_per_epoch = math.ceil(math.ceil(examples / spec.batch_size) / spec.gradient_accumulation)
    by_epochs = math.ceil(spec.epochs * steps_per_epoch) if spec.epochs is not None else None
    return min(steps for steps in (by_epochs, spec.max_steps) if steps is not None)


def mean_loss(peft_model: Any, examples: Sequence[Encoded], batch_size: int, pad_id: int) -> float:
    """Mean completion loss per token over `examples`, without dropout or gradients."""
    peft_model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        order = sorted(range(len(examples)), key=lambda index: len(examples[index]))
        for start in range(0, len(order), batch_size):
            loss, tokens = completion_loss(
                peft_model, collate([examples[i] for i in order[start : start + batch_size]], pad_id)
            )
            total, count = total + float(loss), count + tokens
    return total / max(count, 1)


class Trainer:
    def __init__(
        self,
        peft_model: Any,
        train_set: Sequence[Encoded],
        eval_set: Sequence[Encoded],
        spec: TrainSpec,
        pad_id: int,
        eval_every: int | None,
        sample_weights: Sequence[float] | None = None,
    ) -> None:
        """`sample_weights` (one per training example, mean 1 for the usual loss scale) scale each example's
        loss: a boosting round's weighted training set."""
        self.model = peft_model
        self.sample_weights = sample_weights
        self.train_set = train_set
        self.eval_set = eval_set
        self.spec = spec
        self.pad_id = pad_id
        self.eval_every = eval_every
        self.total_steps = total_steps(len(train_set), spec)
        trainable = [parameter for parameter in peft_model.parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, weight_decay=spec.weight_decay)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            SCHEDULERS[spec.scheduler],
            self.optimizer,
            num_warmup_steps=spec.warmup_steps,
            num_training_steps=self.total_steps,
        )

    def run(
        self,
        checkpoint_dir: Path,
        fingerprint: str,
        resume: bool,
        on_step: Callable[[StepLog], None] | None = None,
    ) -> Progress:
        if resume:
            progress = Progress(
                **load_checkpoint(
                    checkpoint_dir, self.model, self.optimizer, self.scheduler, fingerprint, PROGRESS_TYPES
                )
            )
            progress.resumed_at.append(progress.step)
        else:
            progress = Progress(fingerprint=fingerprint)
            if self.eval_set:
                progress.eval_losses.append({"step": 0, "loss": self._eval_loss()})
        steps = self._steps(progress.step)
        with _stop_on_ctrl_c() as stop_requested:
            while progress.step < self.total_steps:
                log = self._step(next(steps), progress)
                if on_step:
                    on_step(log)
                if stop_requested.is_set():
                    self._save(checkpoint_dir, progress)
                    raise Interrupted(checkpoint_dir, progress.step)
                if (
                    self.eval_every
                    and progress.step % self.eval_every == 0
                    and progress.step < self.total_steps
                ):
                    progress.eval_losses.append({"step": progress.step, "loss": self._eval_loss()})
                if progress.step % self.spec.checkpoint_every == 0 and progress.step < self.total_steps:
                    self._save(checkpoint_dir, progress)
        if self.eval_set and progress.eval_losses[-1]["step"] != progress.step:
            progress.eval_losses.append({"step": progress.step, "loss": self._eval_loss()})
        return progress

    def _steps(self, done: int) -> Iterator[list[list[int]]]:
        """Each step's micro-batches (lists of example indices), skipping the `done` steps already taken."""
        lengths = [len(example) for example in self.train_set]
        micro_batches = epoch_batches(lengths, self.spec.batch_size, self.spec.seed)
        accumulation = self.spec.gradient_accumulation
        for _ in range(done * accumulation):
            next(micro_batches)
        while True:
            yield list(islice(micro_batches, accumulation))

    def _step(self, micro_batches: list[list[int]], progress: Progress) -> StepLog:
        started = time.perf_counter()
        self.model.train()
        weights = self.sample_weights
        batches = [
            collate(
                [self.train_set[i] for i in indices],
                self.pad_id,
                None if weights is None else [weights[i] for i in indices],
            )
            for indices in micro_batches
        ]
        # Every completion token of the step weighs the same, however the micro-batches split them.
        step_tokens = sum(int(batch.labels.numel()) for batch in batches)
        loss_sum = 0.0
        for batch in batches:
            loss, _ = completion_loss(self.model, batch)
            (loss / step_tokens).backward()
            loss_sum += loss.item()
        learning_rate = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(batch.tokens for batch in batches)
        progress.step += 1
        progress.tokens += tokens
        progress.seconds += time.perf_counter() - started
        loss_value = loss_sum / step_tokens
        if progress.step % self.spec.log_every == 0 or progress.step == self.total_steps:
            progress.losses.append(
                {
                    "step": progress.step,
                    "loss": round(loss_value, 5),
                    "learning_rate": learning_rate,
                    "tokens": tokens,
                }
            )
        return StepLog(
            progress.step,
            self.total_steps,
            loss_value,
            learning_rate,
            tokens,
            progress.tokens / max(progress.seconds, 1e-9),
        )

    def _eval_loss(self) -> float:
        return round(mean_loss(self.model, self.eval_set, self.spec.batch_size, self.pad_id), 5)

    def _save(self, checkpoint_dir: Path, progress: Progress) -> None:
        save_checkpoint(checkpoint_dir, self.model, self.optimizer, self.scheduler, vars(progress))


@contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C asks training to stop after the current step; a second one stops it at once."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request_stop(signum: int, frame: object) -> None:
        requested.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)
