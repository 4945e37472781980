"""The run index: one row per run, beside LangGraph's checkpoints in the same SQLite file.

Checkpoints hold each run's state (input, outputs, the log of stage messages); this table holds what
listing and filtering runs needs without reading every checkpoint.
"""

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fslm.errors import FslmError

SCHEMA = """
CREATE TABLE IF NOT EXISTS fslm_runs (
    run_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    pipeline_hash TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    seconds REAL,
    error TEXT,
    parent_id TEXT,
    replay_from TEXT,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS fslm_runs_started ON fslm_runs (started);
CREATE INDEX IF NOT EXISTS fslm_runs_batch ON fslm_runs (batch_id);
CREATE TABLE IF NOT EXISTS fslm_batches (
    batch_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    started REAL NOT NULL
);
"""

STATUSES = ("running", "done", "failed", "interrupted")


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


class RunIndex:
    """Thread-safe: the threads of a batch share one connection, which sqlite3 lets one use at a time."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection
        self.lock = threading.Lock()
        with connection:
            connection.executescript(SCHEMA)

    def _write(self, sql: str, values: tuple) -> None:
        with self.lock, self.connection:
            self.connection.execute(sql, values)

    def _read(self, sql: str, values: tuple | list) -> list[tuple]:
        with self.lock:
            return self.connection.execute(sql, values).fetchall()

    def start(self, record: RunRecord) -> None:
        self._write("INSERT OR REPLACE INTO fslm_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", tuple(asdict(record).values()))

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
        rows = self._read("SELECT batch_id FROM fslm_batches WHERE key = ? ORDER BY started DESC LIMIT 1", (key,))
        return rows[0][0] if rows else None

    def get(self, run_id: str) -> RunRecord:
        rows = self._read("SELECT * FROM fslm_runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise FslmError(f"no run '{run_id}' in this store; `fslm runs list` shows the recorded runs")
        return RunRecord(*rows[0])

    def find(self, prefix: str) -> RunRecord:
        """The run whose id is `prefix` or, if unique, starts with it."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read(
            "SELECT * FROM fslm_runs WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\' LIMIT 3", (prefix, pattern)
        )
        exact = [row for row in rows if row[0] == prefix]
        if exact or len(rows) == 1:
            return RunRecord(*(exact or rows)[0])
        if not rows:
            raise FslmError(f"no run '{prefix}' in this store; `fslm runs list` shows the recorded runs")
        raise FslmError(f"'{prefix}' matches several runs ({', '.join(r[0] for r in rows)}, …); give more of the id")

    def list(
        self, pipeline: str | None = None, status: str | None = None, limit: int | None = 50,
        batch_id: str | None = None,
    ) -> list[RunRecord]:
        clauses, values = [], []
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
        query = f"SELECT * FROM fslm_runs {where} ORDER BY started DESC, run_id"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return [RunRecord(*row) for row in self._read(query, values)]
