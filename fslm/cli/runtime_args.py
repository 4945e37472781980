"""The runtime flags of the commands that generate (`fslm run`, `fslm eval`, `fslm ensemble check`): whether
prompts reuse computed prefixes, and how much memory the prefix cache may keep (docs/runtime.md)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from fslm.errors import FslmError
from fslm.runtime.prefix_cache import DEFAULT_PREFIX_CACHE_BYTES

MIB = 2**20


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runtime (docs/runtime.md)")
    group.add_argument(
        "--no-prefix-reuse",
        dest="reuse_prefixes",
        action="store_false",
        help="compute every prompt whole, even the prefix it shares with others (for comparisons)",
    )
    group.add_argument(
        "--prefix-cache-mb",
        type=float,
        metavar="MB",
        help=f"memory (MiB) per base model for computed prompt prefixes kept across batches "
        f"({DEFAULT_PREFIX_CACHE_BYTES // MIB}; 0 keeps none)",
    )


def runtime_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `Runtime` keyword arguments the flags ask for, checked before anything loads."""
    megabytes = args.prefix_cache_mb
    if megabytes is None:
        return {"reuse_prefixes": args.reuse_prefixes}
    if not args.reuse_prefixes:
        raise FslmError(
            "--prefix-cache-mb sizes the prefix cache, which --no-prefix-reuse turns off; give one of them"
        )
    if not (math.isfinite(megabytes) and megabytes >= 0):
        raise FslmError(f"--prefix-cache-mb must be a number of MiB, 0 or more (got {megabytes:g})")
    return {"reuse_prefixes": True, "prefix_cache_bytes": int(megabytes * MIB)}
