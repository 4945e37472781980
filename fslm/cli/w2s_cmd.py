"""weak-to-strong: boost a weak ensemble on easy data, label hard data with it, fine-tune a strong stage

`fslm finetune w2s RECIPE.yaml` writes the recipe's output directory: weak/ (the boosted members and
boost.json), strong_on_single/, strong_on_ensemble/ and strong_on_gold/ (adapters), labels.jsonl (each hard
item's labels) and w2s.json, the report it prints: the score on the held-out hard test items (accuracy for
choices stages, the recipe's metric for text stages) of the weak model, the weak ensemble, the strong stage
trained on each label set, and the performance gap recovered (docs/boost.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from fslm.cli.boost_cmd import INTERRUPTED, add_start_options, progress_callbacks, round_progress
from fslm.cli.show import console, escaped

NAMES = {
    "weak_single": "weak model (boost round 1)",
    "weak_ensemble": "weak ensemble (α vote)",
    "strong_on_single": "strong on single-weak labels",
    "strong_on_ensemble": "strong on ensemble labels",
    "strong_on_gold": "strong on gold labels (ceiling)",
}


def register_workflow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="a w2s recipe (see docs/boost.md)")
    add_start_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fslm.finetune.boost.recipe import W2SRecipe
    from fslm.finetune.boost.w2s import W2SCallbacks, weak_to_strong
    from fslm.finetune.loading import read_recipe
    from fslm.finetune.train import Interrupted

    recipe = read_recipe(args.recipe, W2SRecipe)
    err = console(stderr=True)
    with round_progress(err) as progress:
        callbacks = W2SCallbacks(
            boost=progress_callbacks(err, progress, "w2s"),
            on_phase=lambda name: err.print(f"[bold]{escaped(name)}[/]"),
            on_warning=lambda message: err.print(f"[yellow]warning:[/] {escaped(message)}"),
        )
        try:
            result = weak_to_strong(
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
    console().print(report_table(result.report))
    err.print(f"written to {escaped(result.output)}")
    return 0


def report_table(report: dict) -> Table:
    table = Table(title=f"held-out hard test items: {report['items']}", header_style="dim")
    for column in ("system", report["metric"], "95% interval", "PGR [95%]"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, label in NAMES.items():
        system = report["systems"][name]
        gap = report["pgr"].get(name)
        shown = "–"
        if gap is not None and gap["value"] is not None:
            bounds = f" [{gap['low']:.2f}, {gap['high']:.2f}]" if gap["low"] is not None else ""
            shown = f"{gap['value']:.2f}{bounds}"
        table.add_row(label, f"{system['accuracy']:.3f}", f"{system['low']:.3f}–{system['high']:.3f}", shown)
    for pair, result in report["paired"].items():
        table.caption = (table.caption + "\n" if table.caption else "") + (
            f"{pair}: {result['wins']} wins, {result['losses']} losses, p = {result['p_value']:.3f}"
        )
    return table
