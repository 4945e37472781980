"""Run store: a LangGraph checkpointer (each run's state) plus a run index, in one SQLite file or one
PostgreSQL database (`fslm.store.postgres`, named by a postgresql:// URL).

A run id is a LangGraph thread id, so replay and time travel are LangGraph's own.
Commands that record runs open the store with `open_store(path)`, which creates it; commands that only read
open it with `open_store(path, read_only=True)`, which never creates, changes or adds a file (or a table).
"""

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
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
from fslm.store.runs import STATUSES, DamagedStoreError, RunIndex, RunRecord, SqliteRunIndex, create_tables

STORE_ENV = "FSLM_STORE"


def default_store_path() -> Path:
    """The per-user store file (what $FSLM_STORE, when set, replaces)."""
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "fslm" / "runs.sqlite"


def is_database_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


@dataclass
class RunStore:
    where: str  # the store as messages name it: its file, its URL without the password, or "(in memory)"
    saver: BaseCheckpointSaver
    index: RunIndex
    resources: tuple  # what close() closes: connections, or read-only store files
    path: Path | None = None  # the SQLite file; None in memory and in PostgreSQL

    def close(self) -> None:
        for resource in self.resources:
            resource.close()


def open_store(path: str | Path | None = None, *, read_only: bool = False) -> RunStore:
    """Open the run store at `path`: a file, a postgresql:// URL, or ":memory:" for none (default:
    $FSLM_STORE or the per-user store file).

    Read-only, the file must exist and be an fslm run store; it stays byte for byte as it was. Otherwise a
    missing file is created, readable by its owner only, and an existing file is used only if it is an fslm
    run store (or an empty file). Either way, any other file is refused before anything is written to it.
    A database is held to the same rules (`fslm.store.postgres`).
    Checkpoints are read back with LangGraph's strict msgpack settings: they hold plain data, and nothing else
    may be revived from the file.
    """
    target = path or os.environ.get(STORE_ENV) or default_store_path()
    if str(target) == ":memory:":
        return _writable_store(None)
    if is_database_url(target):
        from fslm.store.postgres import open_database_store

        return open_database_store(str(target), read_only, _serializer())
    file = Path(target).expanduser()
    try:
        return _read_only_store(file) if read_only else _writable_store(file)
    except sqlite3.DatabaseError as error:
        raise FslmError(store_problem(file, error)) from error
    except OSError as error:
        raise FslmError(f"cannot open the run store {file}: {error.strerror or error}") from error


def _serializer() -> JsonPlusSerializer:
    # Also the database store's: checkpoints hold plain data, and nothing else may be revived from them.
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def _writable_store(file: Path | None) -> RunStore:
    if file is not None:
        _prepare_to_write(file)
    target = ":memory:" if file is None else file
    saver = SqliteSaver(_connect(target), serde=_serializer())
    saver.setup()
    index_connection = _connect(target)
    create_tables(index_connection)
    where = "(in memory)" if file is None else str(file)
    index = SqliteRunIndex(index_connection, where)
    return RunStore(where, saver, index, resources=(saver.conn, index_connection), path=file)


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
    saver, index = ReadOnlySaver(StoreFile(file), _serializer()), ReadOnlyRunIndex(StoreFile(file))
    return RunStore(str(file), saver, index, resources=(saver.source, index.source), path=file)


def _connect(target: str | Path) -> sqlite3.Connection:
    connection = sqlite3.connect(target, check_same_thread=False, timeout=LOCK_WAIT_SECONDS)
    if target != ":memory:":
        connection.execute("PRAGMA journal_mode=WAL")
    return connection


def store_errors() -> tuple[type[Exception], ...]:
    """The exceptions a store's own database raises, from inside LangGraph's checkpointer too."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.DatabaseError,)
    return (sqlite3.DatabaseError, psycopg.Error)


def store_problem(file: str | Path | None, error: Exception) -> str:
    """A message for a database error of the store named `file` (a path, or a URL whose password it hides)."""
    if is_database_url(str(file)) or not isinstance(error, sqlite3.DatabaseError):
        from fslm.store.postgres import database_problem

        return database_problem(str(file or os.environ.get(STORE_ENV, "")), error)
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
    "is_database_url",
    "open_store",
    "store_errors",
    "store_problem",
]
