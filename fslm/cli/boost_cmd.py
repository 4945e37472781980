"""train a weak ensemble by boosting (SAMME): T LoRA members of one stage on reweighted examples, with α

`fslm finetune boost RECIPE.yaml` writes the recipe's output directory: member_1 … member_T (adapters), and
boost.json with each member's α and each round's record (ε, α, weight entropy, time). A boost stage reads it
with `boost: {members: [...], checkpoint: DIR}` (docs/boost.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fslm.cli.show import console, escaped


def register_workflow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="a boost recipe (see docs/boost.md)")
    add_start_options(parser)
    parser.set_defaults(handler=run)


def add_start_options(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--force", action="store_true", help="replace what the output directory holds")
    start.add_argument(
        "--resume", action="store_true", help="continue an interrupted run after its last finished round"
    )


INTERRUPTED = "interrupted; finished rounds are kept: continue with the same command plus --resume"


def round_progress(err) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=err,
    )


def progress_callbacks(err, progress: Progress, label: str):
    from fslm.finetune.boost.rounds import BoostCallbacks

    task = progress.add_task(label, total=None, loss="–")

    def on_round(number: int, rounds: int, steps: int) -> None:
        progress.reset(task, description=f"{label}: round {number}/{rounds}", total=steps, loss="–")

    def on_record(record: dict) -> None:
        capped = " (ε capped)" if record["epsilon_capped"] else ""
        err.print(
            f"round {record['round']}: ε {record['error']:.4f}{capped}, α {record['alpha']:.3f}, "
            f"weight entropy {record['weight_entropy']:.3f}, {record['seconds']:.0f}s"
        )

    return BoostCallbacks(
        on_round=on_round,
        on_step=lambda log: progress.update(task, completed=log.step, loss=f"{log.loss:.4f}"),
        on_record=on_record,
        on_status=lambda message: err.print(f"[dim]{escaped(message)}[/]"),
    )


def run(args: argparse.Namespace) -> int:
    from fslm.finetune.boost.recipe import BoostRecipe
    from fslm.finetune.boost.workflow import boost_finetune
    from fslm.finetune.loading import read_recipe
    from fslm.finetune.train import Interrupted

    recipe = read_recipe(args.recipe, BoostRecipe)
    err = console(stderr=True)
    with round_progress(err) as progress:
        callbacks = progress_callbacks(err, progress, f"boost {recipe.target.stage}")
        try:
            result = boost_finetune(
                recipe,
                force=args.force,
                resume=args.resume,
                callbacks=callbacks,
                recipe_file=args.recipe.absolute(),
            )
        except Interrupted:
            progress.stop()
            err.print(INTERRUPTED)
            os._exit(130)
    if result.stopped:
        err.print(f"[yellow]{escaped(result.stopped)}[/]")
    alphas = ", ".join(f"{member.alpha:.3f}" for member in result.checkpoint.members)
    err.print(f"{len(result.checkpoint.members)} members (α {alphas}) written to {escaped(result.output)}")
    return 0
