"""Run store: LangGraph's SQLite checkpointer. A run id is a LangGraph thread id."""

import os
import sqlite3
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from fslm.errors import FslmError

STORE_ENV = "FSLM_STORE"


def default_store_path() -> Path:
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "fslm" / "runs.sqlite"


def open_store(path: str | Path | None = None) -> SqliteSaver:
    """Open (creating if needed, readable by its owner only) the run store at `path`."""
    if str(path) == ":memory:":
        connection = sqlite3.connect(":memory:", check_same_thread=False)
    else:
        file = Path(path).expanduser() if path else default_store_path()
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            if not file.exists():
                file.touch(mode=0o600)
            connection = sqlite3.connect(file, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as error:
            raise FslmError(f"cannot open the run store {file}: {error}") from error
    # Strict msgpack: checkpoints hold plain data only, so nothing else may be revived from the file.
    saver = SqliteSaver(connection, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
    saver.setup()
    return saver
