"""The adapter directory a recipe writes: where it may be, and whether the adapter in it may be replaced.

Training replaces the whole directory, so it must never be one that holds anything else: the current or
home directory, the recipe's own directory, or a parent of one of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from fslm.errors import FslmError
from fslm.files import check_can_create, check_path_name, recover_directory, resolved

RECORD_FILE = "training.json"
CHECKPOINT_DIR = "checkpoint"


def check_output_place(output: Path, files_read: Iterable[Path]) -> None:
    """Refuse an output that holds the current or home directory or any file the recipe reads, or that cannot
    be created. Runs before any data is read or model loaded; `--force` does not change it."""
    check_path_name(output, "output")
    target = resolved(output)
    protected = [("the current directory", Path.cwd()), ("your home directory", Path.home())]
    protected += [(f"the directory of {path}", path.parent) for path in files_read]
    for name, directory in protected:
        directory = resolved(directory)
        if target == directory or target in directory.parents:
            relation = name if target == directory else f"a parent of {name}"
            raise FslmError(
                f"refusing the output directory {output}: it is {relation}. Training replaces the whole "
                "output directory, so it must be a directory of its own, such as adapters/NAME (--force does "
                "not change this)"
            )
    if output.exists() and not output.is_dir():
        raise FslmError(f"the output {output} exists and is not a directory")
    check_can_create(output, "output directory")


def check_output(output: Path, run_fingerprint: str, force: bool, resume: bool) -> None:
    """Refuse to overwrite an adapter this recipe and data did not make, unless forced."""
    recover_directory(output)
    recover_directory(output / CHECKPOINT_DIR)
    if resume:
        if not (output / CHECKPOINT_DIR).is_dir():
            raise FslmError(f"nothing to resume: {output} holds no checkpoint; run without --resume")
        return
    if force or not output.is_dir() or not any(output.iterdir()):
        return
    if recorded_fingerprint(output) == run_fingerprint:
        return
    if (output / CHECKPOINT_DIR).is_dir() and not (output / "adapter_config.json").is_file():
        raise FslmError(
            f"the output directory {output} holds the checkpoint of an interrupted run; continue it with "
            "--resume, or pass --force to start afresh"
        )
    what = "a different adapter" if (output / "adapter_config.json").is_file() else "other files"
    raise FslmError(
        f"the output directory {output} holds {what}; training would overwrite it. Choose another output, "
        "or pass --force to replace it"
    )


def recorded_fingerprint(output: Path) -> str | None:
    """The fingerprint in the output's training record, None without a record."""
    record_path = output / RECORD_FILE
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = (error.strerror or str(error)) if isinstance(error, OSError) else "not valid JSON"
        raise _damaged(record_path, output, reason) from error
    if not isinstance(record, dict) or not isinstance(record.get("fingerprint"), str | None):
        raise _damaged(record_path, output, "not a training record")
    return record.get("fingerprint")


def _damaged(record_path: Path, output: Path, reason: str) -> FslmError:
    return FslmError(
        f"the training record {record_path} cannot be read ({reason}), so fslm cannot tell which recipe made "
        f"the adapter in {output}. Choose another output, or pass --force to replace the directory"
    )
