"""The run store in a PostgreSQL database: LangGraph's Postgres checkpointer plus fslm's run index, in the
same database, named by a postgresql:// URL (`--store` or $FSLM_STORE). Needs the `postgres` extra.

The trust rules of the store file hold here too. A database is used only if it is empty or already an fslm run
store; any other is refused before anything is written. Read-only, the session is read-only on the server's
side too (`default_transaction_read_only`), so a read command cannot write however it is called. The URL's
password never leaves this module: messages and `RunStore.where` name the database without it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from langgraph.checkpoint.serde.base import SerializerProtocol

from fslm.errors import FslmError
from fslm.store.postgres_index import DatabaseRunIndex, create_index_tables
from fslm.store.schema import EXPECTED_COLUMNS, OPTIONAL_TABLES

EXTRA_HINT = "a postgresql:// store needs the postgres extra: pip install 'fslm[postgres]'"
# LangGraph's Postgres checkpointer names its tables differently from its SQLite one.
EXPECTED_TABLES = {
    "fslm_runs": EXPECTED_COLUMNS["fslm_runs"],
    "fslm_batches": EXPECTED_COLUMNS["fslm_batches"],
    "checkpoints": EXPECTED_COLUMNS["checkpoints"],
    "checkpoint_blobs": {"thread_id", "checkpoint_ns", "channel", "version", "type", "blob"},
    "checkpoint_writes": {"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "blob"},
    "checkpoint_migrations": {"v"},
}
# Held while tables are created and migrated, so that runs starting at once do not race to create them.
SETUP_LOCK = 0x46534C4D  # "FSLM"
SETUP_WAIT_SECONDS = 120
TABLES_SQL = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() ORDER BY table_name
"""


def without_password(url: str) -> str:
    """The URL as messages may show it: user, host, port and database, with any password left out."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a database URL that cannot be read)"
    user = f"{parts.username}@" if parts.username else ""
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, query, ""))


def database_problem(url: str, error: Exception) -> str:
    where = without_password(url)
    detail = " ".join(str(error).split())
    password = urlsplit(url).password if url else None
    if password:
        detail = detail.replace(password, "***")
    return (
        f"the run store {where} cannot be used: {detail}. Check the --store URL (or $FSLM_STORE) and "
        "that the server is running; nothing was written"
    )


def open_database_store(url: str, read_only: bool, serde: SerializerProtocol):
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as error:
        raise FslmError(EXTRA_HINT) from error
    from fslm.store import RunStore

    where = without_password(url)
    options = "-c default_transaction_read_only=on" if read_only else ""
    try:
        # autocommit and no prepared statements: what LangGraph's checkpointer asks of its connection.
        saver_connection = psycopg.connect(
            url, autocommit=True, prepare_threshold=0, row_factory=dict_row, options=options
        )
        index_connection = psycopg.connect(url, autocommit=True, options=options)
        saver = PostgresSaver(saver_connection, serde=serde)
        if read_only:
            _check_tables(index_connection, where, read_only)
        else:
            # Checked under the lock too: another process may be half-way through creating the tables.
            with _setup_lock(index_connection):
                _check_tables(index_connection, where, read_only)
                saver.setup()
                create_index_tables(index_connection)
    except psycopg.Error as error:
        raise FslmError(database_problem(url, error)) from None
    index = DatabaseRunIndex(index_connection, where)
    return RunStore(where, saver, index, resources=(saver_connection, index_connection))


@contextmanager
def _setup_lock(connection) -> Iterator[None]:
    """A session-level advisory lock: one process at a time creates and migrates the tables.

    Asked for again and again rather than waited for in one statement: LangGraph's migrations build indexes
    CONCURRENTLY, which waits for every open statement, a waiting `pg_advisory_lock` too, and that one
    waits for the migrations.
    """
    deadline = time.monotonic() + SETUP_WAIT_SECONDS
    while not connection.execute("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK,)).fetchone()[0]:
        if time.monotonic() > deadline:
            raise FslmError(
                f"another process has been creating the run store's tables for {SETUP_WAIT_SECONDS} s; "
                "try again when it finishes"
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


def _check_tables(connection, where: str, read_only: bool) -> None:
    """Raise FslmError unless the database is an fslm run store (or, to write to, an empty database)."""
    tables: dict[str, set[str]] = {}
    for table, column in connection.execute(TABLES_SQL).fetchall():
        tables.setdefault(table, set()).add(column)
    if not tables and not read_only:
        return
    if not tables:
        raise FslmError(
            f"no run store in {where}: the database is empty. Runs are recorded by `fslm run` (and "
            "`fslm eval`), which create it there; check the --store URL (or $FSLM_STORE)"
        )
    missing = [name for name in EXPECTED_TABLES if name not in tables and name not in OPTIONAL_TABLES]
    clashing = [
        name for name, columns in EXPECTED_TABLES.items() if name in tables and not columns <= tables[name]
    ]
    if not missing and not clashing:
        return
    problem = (
        f"its table {', '.join(clashing)} has other columns than fslm's"
        if clashing
        else f"it has no {' or '.join(missing)} table"
    )
    raise FslmError(
        f"the database {where} is not an fslm run store: {problem} (tables: {', '.join(sorted(tables))}). "
        "fslm left it as it is; point --store (or $FSLM_STORE) at an fslm run store or an empty database"
    )
