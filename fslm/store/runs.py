"""The run index: one row per run, beside LangGraph's checkpoints in the same SQLite file.

Checkpoints hold each run's state (input, outputs, the log of stage messages); this table holds what
listing and filtering runs needs without reading every checkpoint.
"""

import math
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from fslm.errors import FslmError
from fslm.store.schema import RUN_COLUMNS, run_index_schema

SCHEMA = run_index_schema("REAL")

STATUSES = ("running", "done", "failed", "interrupted")
SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM fslm_runs"
TEXT_FIELDS = ("run_id", "pipeline", "pipeline_name", "pipeline_hash", "input", "status")
OPTIONAL_TEXT_FIELDS = ("error", "parent_id", "replay_from", "batch_id")
# SQLite takes at most a signed 64-bit LIMIT; anything near it means "all runs".
MOST_RUNS = 2**62


class DamagedStoreError(FslmError):
    """A run store whose contents cannot be read back: a record or a checkpoint is not what fslm wrote."""


def create_tables(connection: sqlite3.Connection) -> None:
    with connection:
        connection.executescript(SCHEMA)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    pipeline: str
    pipeline_name: str
    pipeline_hash: str
    input: str
    status: str
    started: float
    seconds: float | None = None
    error: str | None = None
    parent_id: str | None = None
    replay_from: str | None = None
    batch_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _field_problem(values: dict[str, object]) -> str | None:
    for name in TEXT_FIELDS:
        if not isinstance(values[name], str):
            return f"its {name} is {values[name]!r}, not text"
    for name in OPTIONAL_TEXT_FIELDS:
        if values[name] is not None and not isinstance(values[name], str):
            return f"its {name} is {values[name]!r}, not text"
    if values["status"] not in STATUSES:
        return f"its status is {values['status']!r}, not one of {', '.join(STATUSES)}"
    started, seconds = values["started"], values["seconds"]
    if not isinstance(started, int | float) or not _is_time(started):
        return f"its start time is {started!r}, not a time"
    if seconds is not None and (not isinstance(seconds, int | float) or not math.isfinite(seconds)):
        return f"its duration is {seconds!r}, not a number of seconds"
    return None


def _is_time(value: float) -> bool:
    try:
        datetime.fromtimestamp(value)
    except (OverflowError, ValueError, OSError):
        return False
    return True


class RunIndex:
    """The run index's queries, in SQLite's dialect; a subclass runs them on its database (`_write`, `_read`).
    Thread-safe: the threads of a batch share one connection, used by one at a time (`lock`)."""

    def __init__(self, where: str) -> None:
        self.where = where  # the store, as messages name it
        self.lock = threading.Lock()

    def _write(self, sql: str, values: tuple) -> None:
        raise NotImplementedError

    def _read(self, sql: str, values: tuple | list) -> list[tuple]:
        raise NotImplementedError

    def _record(self, row: tuple) -> RunRecord:
        values = dict(zip(RUN_COLUMNS, row, strict=True))
        problem = _field_problem(values)
        if problem is not None:
            raise DamagedStoreError(
                f"the run store {self.where} is damaged: the record of run "
                f"{values['run_id']!r} cannot be read ({problem}). fslm did not change it"
            )
        return RunRecord(**values)

    def start(self, record: RunRecord) -> None:
        columns = asdict(record)
        self._write(
            f"INSERT OR REPLACE INTO fslm_runs ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))})",
            tuple(columns.values()),
        )

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        self._write(
            "UPDATE fslm_runs SET status = ?, seconds = ? - started, error = ? WHERE run_id = ?",
            (status, time.time(), error, run_id),
        )

    def mark(self, run_id: str, status: str) -> None:
        """Correct a run's status alone, e.g. a run that completed after it was reported interrupted."""
        self._write("UPDATE fslm_runs SET status = ? WHERE run_id = ?", (status, run_id))

    def start_batch(self, batch_id: str, key: str) -> None:
        """Remember a batch under `key` (what it ran: pipeline, inputs, output) so it can be resumed."""
        self._write("INSERT INTO fslm_batches VALUES (?, ?, ?)", (batch_id, key, time.time()))

    def latest_batch(self, key: str) -> str | None:
        rows = self._read(
            "SELECT batch_id FROM fslm_batches WHERE key = ? ORDER BY started DESC LIMIT 1", (key,)
        )
        return rows[0][0] if rows else None

    def get(self, run_id: str) -> RunRecord:
        rows = self._read(f"{SELECT_RUNS} WHERE run_id = ?", (run_id,))
        if not rows:
            raise FslmError(f"no run '{run_id}' in this store; `fslm runs list` shows the recorded runs")
        return self._record(rows[0])

    def find(self, prefix: str) -> RunRecord:
        """The run whose id is `prefix` or, if unique, starts with it."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read(
            f"{SELECT_RUNS} WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\' LIMIT 3", (prefix, pattern)
        )
        exact = [row for row in rows if row[0] == prefix]
        if exact or len(rows) == 1:
            return self._record((exact or rows)[0])
        if not rows:
            raise FslmError(f"no run '{prefix}' in this store; `fslm runs list` shows the recorded runs")
        raise FslmError(
            f"'{prefix}' matches several runs ({', '.join(str(r[0]) for r in rows)}, …); give more of the id"
        )

    def list(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        batch_id: str | None = None,
    ) -> list[RunRecord]:
        clauses: list[str] = []
        values: list[str | int] = []
        if pipeline:
            clauses.append("(pipeline_name = ? OR pipeline = ?)")
            values += [pipeline, str(Path(pipeline).resolve())]
        if status:
            clauses.append("status = ?")
            values.append(status)
        if batch_id:
            clauses.append("batch_id = ?")
            values.append(batch_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"{SELECT_RUNS} {where} ORDER BY started DESC, run_id"
        if limit is not None:
            query += " LIMIT ?"
            values.append(min(limit, MOST_RUNS))
        return [self._record(row) for row in self._read(query, values)]


class SqliteRunIndex(RunIndex):
    """The run index in an SQLite store file (or in memory)."""

    def __init__(self, connection: sqlite3.Connection, where: str = "(in memory)") -> None:
        super().__init__(where)
        self.connection = connection

    def _write(self, sql: str, values: tuple) -> None:
        with self.lock, self.connection:
            self.connection.execute(sql, values)

    def _read(self, sql: str, values: tuple | list) -> list[tuple]:
        with self.lock:
            return self.connection.execute(sql, values).fetchall()
