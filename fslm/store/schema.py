"""Is this SQLite file an fslm run store? Decided from its tables alone, before anything is written to it."""

import sqlite3
from pathlib import Path

from fslm.errors import FslmError

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_FORMAT = 2  # header bytes 18 and 19 (write and read format versions) in a WAL-mode file

# The run index's tables, column → SQL type, for SQLite and PostgreSQL alike; {time} is a time in seconds,
# whose type each database names its own way.
RUN_TABLE = {
    "run_id": "TEXT PRIMARY KEY",
    "pipeline": "TEXT NOT NULL",
    "pipeline_name": "TEXT NOT NULL",
    "pipeline_hash": "TEXT NOT NULL",
    "input": "TEXT NOT NULL",
    "status": "TEXT NOT NULL",
    "started": "{time} NOT NULL",
    "seconds": "{time}",
    "error": "TEXT",
    "parent_id": "TEXT",
    "replay_from": "TEXT",
    "batch_id": "TEXT",
}
BATCH_TABLE = {"batch_id": "TEXT PRIMARY KEY", "key": "TEXT NOT NULL", "started": "{time} NOT NULL"}
RUN_COLUMNS = tuple(RUN_TABLE)


def run_index_schema(time_type: str) -> str:
    """The SQL that creates the run index's tables and indexes, with `time_type` as the type of times."""

    def table(name: str, columns: dict[str, str]) -> str:
        lines = ",\n".join(f"    {column} {kind.format(time=time_type)}" for column, kind in columns.items())
        return f"CREATE TABLE IF NOT EXISTS {name} (\n{lines}\n);\n"

    return (
        table("fslm_runs", RUN_TABLE)
        + "CREATE INDEX IF NOT EXISTS fslm_runs_started ON fslm_runs (started);\n"
        + "CREATE INDEX IF NOT EXISTS fslm_runs_batch ON fslm_runs (batch_id);\n"
        + table("fslm_batches", BATCH_TABLE)
    )


# The columns fslm reads; LangGraph may add columns of its own (it added writes.task_path).
EXPECTED_COLUMNS: dict[str, set[str]] = {
    "fslm_runs": set(RUN_TABLE),
    "checkpoints": {
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "parent_checkpoint_id",
        "type",
        "checkpoint",
        "metadata",
    },
    "writes": {"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type", "value"},
    "fslm_batches": set(BATCH_TABLE),
}
OPTIONAL_TABLES = {"fslm_batches"}  # created by the first batch run


def read_header(file: Path) -> bytes:
    """The first 100 bytes of `file`: SQLite's file header, if it is an SQLite file."""
    with file.open("rb") as handle:
        return handle.read(100)


def is_sqlite(header: bytes) -> bool:
    return header.startswith(SQLITE_MAGIC)


def is_wal_mode(header: bytes) -> bool:
    return len(header) >= 20 and header[18] == WAL_FORMAT and header[19] == WAL_FORMAT


def table_columns(connection: sqlite3.Connection) -> dict[str, set[str]]:
    names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {
        name: {row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))}
        for name in names
    }


def check_fslm_tables(file: Path, tables: dict[str, set[str]]) -> None:
    """Raise FslmError unless `tables` are those of an fslm run store."""
    missing = [name for name in EXPECTED_COLUMNS if name not in tables and name not in OPTIONAL_TABLES]
    clashing = [
        name for name, columns in EXPECTED_COLUMNS.items() if name in tables and not columns <= tables[name]
    ]
    if not missing and not clashing:
        return
    found = ", ".join(sorted(tables)) or "none"
    problem = (
        f"its table {', '.join(clashing)} has other columns than fslm's"
        if clashing
        else f"it has no {' or '.join(missing)} table"
    )
    raise FslmError(
        f"{file} is an SQLite file but not an fslm run store: {problem} (tables: {found}). "
        "fslm left it as it is; point --store (or $FSLM_STORE) at an fslm run store, "
        "or at a new file to record runs"
    )
