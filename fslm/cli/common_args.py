"""The flags several commands share, each defined once: the run store, and how many requests share a
forward pass."""

from __future__ import annotations

import argparse


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="run store: a file or a postgresql:// URL (default: $FSLM_STORE or the per-user store)",
    )


def add_batch_size_argument(parser: argparse.ArgumentParser, default: int = 32) -> None:
    parser.add_argument(
        "--batch-size", type=int, default=default, help=f"most requests in one forward pass ({default})"
    )
