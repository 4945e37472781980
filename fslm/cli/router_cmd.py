"""train a Zooter router over a router stage's experts (docs/router.md)

`fslm finetune router RECIPE.yaml` runs every expert on the recipe's queries (batched; recorded runs are
reused), scores their answers, and trains the router to match the softmax of the rewards, smoothed by tags.
"""

import argparse
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from fslm.cli.show import console, escaped


def register_workflow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="the router recipe (YAML)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fslm.finetune.loading import read_recipe
    from fslm.finetune.router.recipe import RouterRecipe
    from fslm.finetune.router.workflow import RouterCallbacks, train_router_recipe

    recipe = read_recipe(args.recipe, RouterRecipe)
    err = console(stderr=True)
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}", markup=False),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        tasks: dict[str, TaskID] = {}

        def on_expert(expert: str, done: int, total: int) -> None:
            if expert not in tasks:
                tasks[expert] = progress.add_task(f"expert {expert}", total=total, note="")
            progress.update(tasks[expert], completed=done)

        def on_epoch(log, epochs: int) -> None:
            if "train" not in tasks:
                tasks["train"] = progress.add_task("train router", total=epochs, note="")
            note = f"KL {log.train_kl:.4f} held-out {log.held_out_kl:.4f} agree {log.agreement:.2f}"
            progress.update(tasks["train"], completed=log.epoch, note=note)

        summary = train_router_recipe(
            recipe,
            RouterCallbacks(
                on_status=lambda message: err.print(f"[dim]{escaped(message)}[/]"),
                on_expert=on_expert,
                on_epoch=on_epoch,
            ),
        )
    if summary.dropped:
        err.print(
            f"[yellow]warning:[/] {summary.dropped} record(s) left out: no usable input or no reference"
        )
    if summary.flat:
        err.print(
            f"[yellow]warning:[/] {summary.flat} of {summary.queries} queries gave every expert the same "
            "reward (flat labels: nothing to learn from them)"
        )
    err.print(
        f"{summary.queries} queries ({summary.dropped} records left out, {summary.flat} with flat rewards); "
        f"label entropy {summary.label_entropy:.3f} nats (uniform: {summary.max_entropy:.3f})"
    )
    experts = ", ".join(f"{escaped(name)} {value:.3f}" for name, value in summary.expert_rewards.items())
    err.print(
        f"held-out ({summary.held_out} queries), epoch {summary.best_epoch}: argmax agrees with a best "
        f"expert on {100 * summary.agreement:.1f}%; mean reward routed {summary.routed_reward:.3f}, "
        f"experts alone {experts}, oracle {summary.oracle_reward:.3f}"
    )
    err.print(f"router written to {escaped(summary.output)}")
    return 0
