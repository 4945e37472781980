"""`fslm finetune`: train one stage's LoRA adapter from a recipe, or from a pipeline, a stage and a data
file."""

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fslm.cli.engine_args import add_engine_arguments, engine_options, on_engine
from fslm.cli.show import console, escaped, visible
from fslm.errors import FslmError

# Flags that override recipe keys, named as the keys are: --max-steps sets train.max_steps.
OVERRIDES: dict[str, tuple[str, type]] = {
    "epochs": ("train", float),
    "max_steps": ("train", int),
    "learning_rate": ("train", float),
    "scheduler": ("train", str),
    "warmup_steps": ("train", int),
    "batch_size": ("train", int),
    "gradient_accumulation": ("train", int),
    "max_length": ("train", int),
    "seed": ("train", int),
    "dtype": ("train", str),
    "checkpoint_every": ("train", int),
    "r": ("lora", int),
    "alpha": ("lora", float),
    "dropout": ("lora", float),
}


# Training workflows with a recipe format of their own (`fslm finetune NAME RECIPE.yaml`), each a module
# here with `register_workflow(parser)`; see fslm.cli.main.workflow_command.
WORKFLOWS: dict[str, str] = {
    "boost": "fslm.cli.boost_cmd",
    "w2s": "fslm.cli.w2s_cmd",
    "router": "fslm.cli.router_cmd",
    "cascade": "fslm.cli.cascade_cmd",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "finetune",
        help="train a LoRA adapter for one stage, from a recipe or from --stage and --data",
        epilog="".join(f"fslm finetune {name} {doc}\n" for name, doc in workflow_help().items()) or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", type=Path, help="a recipe (finetune/*.yaml), or a pipeline with --stage/--data"
    )
    parser.add_argument("--stage", help="shorthand: the stage of the pipeline to tune")
    parser.add_argument(
        "--data", type=Path, help="shorthand: JSONL/CSV/Parquet with template variables and target"
    )
    parser.add_argument("--output", type=Path, help="adapter directory (overrides the recipe's output)")
    for key, (section, kind) in OVERRIDES.items():
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, help=f"sets {section}.{key}")
    parser.add_argument("--resume", action="store_true", help="continue from the output's last checkpoint")
    parser.add_argument(
        "--force", action="store_true", help="replace a different adapter in the output directory"
    )
    parser.add_argument(
        "--attach",
        nargs="?",
        const=True,
        type=Path,
        metavar="PIPELINE",
        help="write the adapter into the stage of the target pipeline (or of PIPELINE)",
    )
    add_engine_arguments(parser)  # for a recipe whose data comes from a teacher: where the teacher runs
    parser.set_defaults(handler=run)
    for name, module_name in WORKFLOWS.items():
        module = importlib.import_module(module_name)
        workflow = commands.add_parser(
            f"finetune {name}", prog=f"fslm finetune {name}", description=module.__doc__
        )
        module.register_workflow(workflow)


def workflow_help() -> dict[str, str]:
    """Each workflow's argument and first doc line: what `fslm finetune --help` lists. A workflow reads a
    recipe unless its module names what it reads instead (`SOURCE`)."""
    helps = {}
    for name, module_name in WORKFLOWS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        helps[name] = f"{getattr(module, 'SOURCE', 'RECIPE.yaml')}: {summary}"
    return helps


def overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for key, (section, _) in OVERRIDES.items():
        if getattr(args, key) is not None:
            sections.setdefault(section, {})[key] = getattr(args, key)
    return sections


def build_recipe(args: argparse.Namespace):
    from fslm.files import check_path_name, resolved
    from fslm.finetune import load_recipe, shorthand_recipe

    if args.stage is not None or args.data is not None:
        if args.stage is None or args.data is None:
            raise FslmError("the shorthand needs both --stage NAME and --data FILE (with a pipeline file)")
        return shorthand_recipe(args.source, args.stage, args.data, args.output, overrides(args))
    recipe = load_recipe(args.source, overrides(args))
    if args.output is None:
        return recipe
    check_path_name(args.output, "output")
    return recipe.model_copy(update={"output": resolved(args.output)})


def run(args: argparse.Namespace) -> int:
    from fslm.finetune import Callbacks, finetune
    from fslm.finetune.attach import attach_adapter
    from fslm.finetune.train import Interrupted

    recipe = build_recipe(args)
    engine = engine_options(args)
    if engine is not None and recipe.data.teacher is None:
        raise FslmError("--engine ray runs a teacher's runs; this recipe's data comes from no teacher")
    attach_to = attach_target(args, recipe)
    err = console(stderr=True)
    stage = visible(recipe.target.stage)
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(f"finetune {stage}", total=None, loss="–", speed="–")

        def on_teacher(done: int, total: int) -> None:
            progress.update(task, description="teacher runs", completed=done, total=total)

        def on_start(steps: int, train: int, held_out: int) -> None:
            err.print(f"[dim]{train} training examples, {held_out} held out, {steps} steps[/]")
            progress.update(task, description=f"finetune {stage}", completed=0, total=steps)

        def on_step(log) -> None:
            progress.update(
                task, completed=log.step, loss=f"{log.loss:.4f}", speed=f"{log.tokens_per_second:.0f}"
            )

        callbacks = Callbacks(
            on_teacher=on_teacher,
            on_start=on_start,
            on_step=on_step,
            on_status=lambda message: err.print(f"[dim]{escaped(message)}[/]"),
            teacher_engine=None if engine is None else lambda pipeline: on_engine(pipeline, engine),
        )
        try:
            result = finetune(
                recipe,
                resume=args.resume,
                force=args.force,
                callbacks=callbacks,
                recipe_file=args.source.absolute(),
            )
        except Interrupted as stopped:
            progress.stop()
            err.print(f"{escaped(stopped)}. Continue with the same command plus --resume")
            # Rich and torch threads may still hold the terminal; the checkpoint is complete, so leave now.
            os._exit(130)
    show_summary(err, result.record, result.output)
    if attach_to is not None:
        attach_adapter(attach_to, recipe.target.stage, result.output)
        err.print(f"attached to stage '{escaped(recipe.target.stage)}' of {escaped(attach_to)}")
    return 0


def attach_target(args: argparse.Namespace, recipe) -> Path | None:
    """The pipeline `--attach` writes the adapter into, checked before training so that a mistake costs
    nothing."""
    if not args.attach:
        return None
    from fslm.files import check_path_name, resolved
    from fslm.finetune.attach import check_attachable

    if args.attach is not True:
        check_path_name(args.attach, "pipeline")
    pipeline = recipe.target.pipeline if args.attach is True else resolved(args.attach)
    check_attachable(pipeline, recipe.target.stage)
    return pipeline


def show_summary(err: Console, record: dict, output: Path) -> None:
    eval_losses = record["eval_loss"]
    if eval_losses:
        err.print(f"held-out loss {eval_losses[0]['loss']:.4f} → {eval_losses[-1]['loss']:.4f}")
    metric = record.get("metric")
    if metric:
        err.print(
            f"held-out {escaped(metric['name'])} {metric['before']:.3f} → {metric['after']:.3f} "
            f"({metric['items']} items)"
        )
    err.print(f"{record['tokens_per_second']:.0f} training tokens/s; adapter written to {escaped(output)}")
