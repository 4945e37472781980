"""Run store: LangGraph's SQLite checkpointer (each run's state) plus a run index, in one SQLite file.

A run id is a LangGraph thread id, so replay and time travel are LangGraph's own.
Commands that record runs open the store with `open_store(path)`, which creates it; commands that only read
open it with `open_store(path, read_only=True)`, which never creates, changes or adds a file.
"""

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from fslm.errors import FslmError
from fslm.store.read_only import (
    LOCK_WAIT_SECONDS,
    ReadOnlyRunIndex,
    ReadOnlySaver,
    StoreFile,
    checked_connection,
)
from fslm.store.runs import STATUSES, DamagedStoreError, RunIndex, RunRecord, create_tables

STORE_ENV = "FSLM_STORE"


def default_store_path() -> Path:
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "fslm" / "runs.sqlite"


@dataclass
class RunStore:
    path: Path | None  # None for an in-memory store
    saver: SqliteSaver
    index: RunIndex

    def close(self) -> None:
        if isinstance(self.saver, ReadOnlySaver) and isinstance(self.index, ReadOnlyRunIndex):
            self.saver.source.close()
            self.index.source.close()
        else:
            self.saver.conn.close()
            self.index.connection.close()


def open_store(path: str | Path | None = None, *, read_only: bool = False) -> RunStore:
    """Open the run store at `path` (default: $FSLM_STORE or the per-user store; ":memory:" for none).

    Read-only, the file must exist and be an fslm run store; it stays byte for byte as it was. Otherwise a
    missing file is created, readable by its owner only, and an existing file is used only if it is an fslm
    run store (or an empty file). Either way, any other file is refused before anything is written to it.
    Checkpoints are read back with LangGraph's strict msgpack settings: they hold plain data, and nothing else
    may be revived from the file.
    """
    if str(path) == ":memory:":
        return _writable_store(None)
    file = Path(path).expanduser() if path else default_store_path()
    try:
        return _read_only_store(file) if read_only else _writable_store(file)
    except sqlite3.DatabaseError as error:
        raise FslmError(store_problem(file, error)) from error
    except OSError as error:
        raise FslmError(f"cannot open the run store {file}: {error.strerror or error}") from error


def _serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def _writable_store(file: Path | None) -> RunStore:
    if file is not None:
        _prepare_to_write(file)
    target = ":memory:" if file is None else file
    saver = SqliteSaver(_connect(target), serde=_serializer())
    saver.setup()
    index_connection = _connect(target)
    create_tables(index_connection)
    return RunStore(path=file, saver=saver, index=RunIndex(index_connection, file))


def _prepare_to_write(file: Path) -> None:
    """Create a new store file, or make sure an existing one is a store (or empty) before anything writes
    to it."""
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.touch(mode=0o600)
        return
    checked = checked_connection(file, allow_empty=True)
    if checked is not None:
        checked.close()


def _read_only_store(file: Path) -> RunStore:
    if not file.exists():
        raise FslmError(
            f"no run store at {file}; runs are recorded by `fslm run` (and `fslm eval`), which create it. "
            "Check the --store path (or $FSLM_STORE)"
        )
    # One StoreFile each, as the viewer's threads may read the index and the checkpoints at once.
    saver = ReadOnlySaver(StoreFile(file), _serializer())
    return RunStore(path=file, saver=saver, index=ReadOnlyRunIndex(StoreFile(file)))


def _connect(target: str | Path) -> sqlite3.Connection:
    connection = sqlite3.connect(target, check_same_thread=False, timeout=LOCK_WAIT_SECONDS)
    if target != ":memory:":
        connection.execute("PRAGMA journal_mode=WAL")
    return connection


def store_problem(file: Path | None, error: sqlite3.DatabaseError) -> str:
    if "locked" in str(error) or "busy" in str(error):
        return (
            f"the run store {file} stayed locked by another process for {LOCK_WAIT_SECONDS} s; "
            "try again when it finishes"
        )
    return (
        f"the run store {file} cannot be used ({error}); it is damaged or not an fslm run store. "
        "Point --store (or $FSLM_STORE) at another file; this one was left as it is"
    )


__all__ = [
    "STATUSES",
    "DamagedStoreError",
    "RunIndex",
    "RunRecord",
    "RunStore",
    "default_store_path",
    "open_store",
    "store_problem",
]
