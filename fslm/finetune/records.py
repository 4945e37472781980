"""Reading data files into plain records: JSONL, CSV, Parquet, or a directory saved by `datasets`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.jsonl import json_lines

FORMATS = ".jsonl, .json (JSON Lines), .csv, .parquet, or a directory written by datasets' save_to_disk"


def read_records(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Every record of the data file (or `datasets` directory) at `path`, as dicts."""
    if path.is_dir():
        return _read_datasets_dir(path, split)
    if not path.is_file():
        raise FslmError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as file:
            return [dict(row) for row in csv.DictReader(file)]
    if suffix == ".parquet":
        from pyarrow import parquet

        try:
            return parquet.read_table(path).to_pylist()
        except Exception as error:
            raise FslmError(f"cannot read the Parquet file {path}: {error}") from error
    raise FslmError(f"data file {path} has an unknown format; fslm reads {FORMATS}")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, record in json_lines(path):
        if not isinstance(record, dict):
            raise FslmError(f"{path}:{number}: each line must be a JSON object")
        records.append(record)
    return records


def _read_datasets_dir(path: Path, split: str | None) -> list[dict[str, Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise FslmError(f"{path} is not a directory written by datasets' save_to_disk ({error})") from error
    if isinstance(loaded, DatasetDict):
        if split is None or split not in loaded:
            raise FslmError(
                f"{path} holds the splits {', '.join(loaded)}; choose one with `split:`"
                + (f" (there is no split {split!r})" if split else "")
            )
        loaded = loaded[split]
    assert isinstance(loaded, Dataset)
    return loaded.to_list()
