"""Reading data files into plain records: JSONL, CSV, Parquet, or a directory saved by `datasets`."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.files import check_path_name, read_text_file
from fslm.jsonl import json_lines

FORMATS = ".jsonl, .json (JSON Lines), .csv, .parquet, or a directory written by datasets' save_to_disk"


def read_records(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Every record of the data file (or `datasets` directory) at `path`, as dicts."""
    check_path_name(path, "data file")
    if path.is_dir():
        return _read_datasets_dir(path, split)
    if not path.is_file():
        if path.is_symlink():
            raise FslmError(f"data file {path} is a symbolic link that leads nowhere (broken, or a loop)")
        raise FslmError(
            f"data file {path} " + ("is not a regular file" if path.exists() else "does not exist")
        )
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
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


def _read_csv(path: Path) -> list[dict[str, Any]]:
    # utf-8-sig: spreadsheet programs start a UTF-8 CSV with a byte-order mark.
    rows = csv.reader(io.StringIO(read_text_file(path, "data file", encoding="utf-8-sig"), newline=""))
    records: list[dict[str, Any]] = []
    header: list[str] | None = None
    try:
        for row in rows:
            if header is None:
                header = row
            elif len(row) > len(header):
                raise FslmError(
                    f"{path}:{rows.line_num}: this row has {len(row)} fields and the header line names "
                    f"{len(header)}; quote values that contain commas"
                )
            elif row:
                records.append(dict(zip(header, [*row, *[None] * (len(header) - len(row))], strict=True)))
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise FslmError(
                f"{path}:{rows.line_num}: a field is longer than the CSV reader allows "
                f"({csv.field_size_limit()} characters); save such data as JSONL or Parquet"
            ) from error
        raise FslmError(f"{path}:{rows.line_num}: not valid CSV ({error})") from error
    return records


def _read_datasets_dir(path: Path, split: str | None) -> list[dict[str, Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except (OSError, ValueError) as error:
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
