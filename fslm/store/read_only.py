"""Reading a run store without writing to it: no file created, changed, or added beside it.

SQLite opens a WAL-mode file read-only by creating -wal and -shm files beside it, and leaves them there.
Without a -wal file no process is writing and every commit is in the file itself, which `immutable=1` reads as
it is, as a snapshot. With one, a writer is at work and `mode=ro` also sees its latest commits, through the
files that writer made. A long-lived reader (the web viewer) sees runs recorded after it started.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, overload

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

from fslm.errors import FslmError
from fslm.store.runs import DamagedStoreError, RunIndex
from fslm.store.schema import check_fslm_tables, is_sqlite, is_wal_mode, read_header, table_columns

LOCK_WAIT_SECONDS = 30


@overload
def checked_connection(file: Path, allow_empty: Literal[False]) -> sqlite3.Connection: ...
@overload
def checked_connection(file: Path, allow_empty: bool) -> sqlite3.Connection | None: ...
def checked_connection(file: Path, allow_empty: bool) -> sqlite3.Connection | None:
    """A read-only connection to `file` once it is known to be an fslm run store; None for an empty file.

    With `allow_empty`, an empty file, or an SQLite file without tables, may become a store; else it is
    refused.
    """
    if file.is_dir():
        raise FslmError(f"the run store {file} is a directory; --store (or $FSLM_STORE) names a file")
    header = read_header(file)
    if not header and allow_empty:
        return None
    if not is_sqlite(header):
        state = "is empty" if not header else "is not an SQLite file: it is damaged or"
        raise FslmError(
            f"{file} {state} not an fslm run store. fslm left it as it is; "
            "point --store (or $FSLM_STORE) at an fslm run store"
        )
    connection = _connect_read_only(file, header)
    tables = table_columns(connection)
    if tables or not allow_empty:
        check_fslm_tables(file, tables)
    return connection


def _connect_read_only(file: Path, header: bytes) -> sqlite3.Connection:
    snapshot = is_wal_mode(header) and not _wal_file(file).exists()
    uri = file.resolve().as_uri() + ("?mode=ro&immutable=1" if snapshot else "?mode=ro")
    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=LOCK_WAIT_SECONDS)


def _wal_file(file: Path) -> Path:
    return Path(f"{file}-wal")


class StoreFile:
    """Read-only connections to a store file, for one reader at a time (its owner holds a lock).

    With no writer at work, one snapshot connection serves every read until the file changes. While a writer
    is at work, each read opens its own connection and closes it, so that the writer, when it closes last,
    folds its -wal file back in and removes it as it does with no reader.
    """

    def __init__(self, file: Path):
        self.file = file
        self.snapshot: sqlite3.Connection | None = None
        self.snapshot_of: tuple[int, int, int] | None = None  # the file's inode, size and mtime then
        connection = checked_connection(
            file, allow_empty=False
        )  # is it a store? Asked now, not at the first read
        connection.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        try:
            stat = self.file.stat()
            state = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if state != self.snapshot_of:
                self.close()
            if _wal_file(self.file).exists():
                connection = _connect_read_only(self.file, read_header(self.file))
            else:
                if self.snapshot is None:
                    self.snapshot, self.snapshot_of = checked_connection(self.file, allow_empty=False), state
                connection = self.snapshot
        except (FslmError, OSError) as error:
            raise DamagedStoreError(
                f"the run store {self.file} changed and can no longer be read: {error}"
            ) from error
        try:
            yield connection
        finally:
            if connection is not self.snapshot:
                connection.close()

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
        self.snapshot = self.snapshot_of = None


class ReadOnlyRunIndex(RunIndex):
    """The run index on a StoreFile; it has no connection of its own."""

    def __init__(self, source: StoreFile):
        super().__init__(str(source.file))
        self.source = source

    def _read(self, sql: str, values: tuple | list) -> list[tuple]:
        with self.lock, self.source.reading() as connection:
            return connection.execute(sql, values).fetchall()


class ReadOnlySaver(SqliteSaver):
    """LangGraph's SQLite checkpointer on a StoreFile: setup() would switch the file to WAL and create
    tables."""

    def __init__(self, source: StoreFile, serde: SerializerProtocol):
        with source.reading() as connection:
            super().__init__(connection, serde=serde)  # replaced at each read by the connection it reads with
            self._has_task_path = "task_path" in table_columns(connection)["writes"]
        self.source = source
        self.is_setup = True

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock, self.source.reading() as connection:
            if connection is not self.conn:
                self.conn = connection
                # Stores written before LangGraph added writes.task_path can be read without it.
                self._has_task_path = "task_path" in table_columns(connection)["writes"]
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
