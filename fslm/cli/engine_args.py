"""The `--engine` flags of the commands that run many items (`fslm run --input-file`, `fslm eval`): which
engine, and for Ray, where and with how many actors."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fslm.errors import FslmError

if TYPE_CHECKING:
    from fslm.engines.ray_engine import RayOptions

RAY_FLAGS = ("address", "actors", "cpus_per_actor", "gpus_per_actor")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine (docs/scale.md)")
    group.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="run the items in this process (local, the default) or on Ray actors (needs fslm[ray])",
    )
    group.add_argument(
        "--address",
        help="with --engine ray: the Ray cluster (auto, ray://HOST:PORT); default: start one here",
    )
    group.add_argument(
        "--actors", type=int, help="with --engine ray: actors, each with the models loaded (1)"
    )
    group.add_argument(
        "--cpus-per-actor",
        type=int,
        metavar="C",
        help="with --engine ray: CPUs (torch threads) per actor (1)",
    )
    group.add_argument(
        "--gpus-per-actor", type=float, metavar="G", help="with --engine ray: GPUs Ray reserves per actor (0)"
    )


def engine_options(args: argparse.Namespace) -> RayOptions | None:
    """The Ray engine's options, checked (and Ray found) before anything loads; None for the local engine."""
    given = [f"--{name.replace('_', '-')}" for name in RAY_FLAGS if getattr(args, name) is not None]
    if args.engine == "local":
        if given:
            raise FslmError(f"{', '.join(given)}: for the Ray engine only; add --engine ray")
        return None
    from fslm.engines.ray_engine import RayOptions, import_ray

    for name in ("actors", "cpus_per_actor"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise FslmError(f"--{name.replace('_', '-')} must be at least 1")
    if args.gpus_per_actor is not None and not args.gpus_per_actor >= 0:
        raise FslmError("--gpus-per-actor must be 0 or more")
    import_ray()
    chosen = {name: getattr(args, name) for name in RAY_FLAGS if getattr(args, name) is not None}
    return RayOptions(**chosen)


def on_engine(pipeline, options: RayOptions | None):
    """The pipeline to run many items on: itself for the local engine, else its Ray engine."""
    if options is None:
        return pipeline
    from fslm.engines.ray_engine import RayPipeline

    return RayPipeline(pipeline, options)
