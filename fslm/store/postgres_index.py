"""The run index in PostgreSQL: the same tables and queries as in SQLite, in Postgres' dialect."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fslm.store.runs import RunIndex, RunRecord
from fslm.store.schema import run_index_schema

if TYPE_CHECKING:  # psycopg is the `postgres` extra's, imported when a PostgreSQL store opens
    import psycopg

# Times as double precision: Postgres' REAL has 6 digits, too few for a time.
SCHEMA = run_index_schema("DOUBLE PRECISION")


def create_index_tables(connection) -> None:
    with connection.transaction():
        connection.execute(SCHEMA)


class DatabaseRunIndex(RunIndex):
    """RunIndex on a psycopg connection (autocommit; each write is its own transaction)."""

    def __init__(self, connection: psycopg.Connection[Any], where: str) -> None:
        super().__init__(where)
        self.connection = connection

    def _write(self, sql: str, values: tuple) -> None:
        with self.lock:
            self.connection.execute(_in_dialect(sql), values)

    def _read(self, sql: str, values: tuple | list) -> list[tuple]:
        with self.lock:
            return self.connection.execute(_in_dialect(sql), values).fetchall()

    def start(self, record: RunRecord) -> None:
        columns = asdict(record)
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in columns if name != "run_id")
        self._write(
            f"INSERT INTO fslm_runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}",
            tuple(columns.values()),
        )


def _in_dialect(sql: str) -> str:
    """RunIndex's queries use sqlite3's `?` placeholders and no `%`; psycopg takes `%s`."""
    return sql.replace("?", "%s")
