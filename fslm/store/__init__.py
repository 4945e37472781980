"""Run store: LangGraph's SQLite checkpointer (each run's state) plus a run index, in one SQLite file.

A run id is a LangGraph thread id, so replay and time travel are LangGraph's own.
"""

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from fslm.errors import FslmError
from fslm.store.runs import STATUSES, RunIndex, RunRecord

STORE_ENV = "FSLM_STORE"
LOCK_WAIT_SECONDS = 30


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


def _connect(target: str | Path) -> sqlite3.Connection:
    connection = sqlite3.connect(target, check_same_thread=False, timeout=LOCK_WAIT_SECONDS)
    if target != ":memory:":
        connection.execute("PRAGMA journal_mode=WAL")
    return connection


def open_store(path: str | Path | None = None) -> RunStore:
    """Open the run store at `path` (default: $FSLM_STORE or the per-user store; ":memory:" for none).

    A new file is created readable by its owner only. Checkpoints are read back with LangGraph's strict
    msgpack settings: they hold plain data, and nothing else may be revived from the file.
    """
    file = None if str(path) == ":memory:" else Path(path).expanduser() if path else default_store_path()
    try:
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            if not file.exists():
                file.touch(mode=0o600)
        target = ":memory:" if file is None else file
        saver = SqliteSaver(_connect(target), serde=JsonPlusSerializer(allowed_msgpack_modules=None))
        saver.setup()
        index = RunIndex(_connect(target))
    except sqlite3.DatabaseError as error:
        raise FslmError(store_problem(file, error)) from error
    except OSError as error:
        raise FslmError(f"cannot open the run store {file}: {error.strerror}") from error
    return RunStore(path=file, saver=saver, index=index)


def store_problem(file: Path | None, error: sqlite3.DatabaseError) -> str:
    if "locked" in str(error) or "busy" in str(error):
        return (f"the run store {file} stayed locked by another process for {LOCK_WAIT_SECONDS} s; "
                "try again when it finishes")
    return (f"the run store {file} cannot be used ({error}); it is damaged or not an fslm run store. "
            "Point --store (or $FSLM_STORE) at another file; this one was left as it is")


__all__ = ["STATUSES", "RunIndex", "RunRecord", "RunStore", "default_store_path", "open_store", "store_problem"]
