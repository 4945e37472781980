"""The viewer's JSON API: a path and query in, a status and a JSON-ready payload out (no HTTP here).

    GET /api/runs?pipeline=NAME&status=done&limit=50   recorded runs, newest first
    GET /api/runs/RUN_ID                               one run: its record, stage messages and outputs
    GET /api/runs/RUN_ID/graph                         the graph of the run's pipeline
    GET /api/diff?a=RUN_ID&b=RUN_ID                    two runs' stage outputs side by side

Errors are `{"error": message}` with status 400 (bad query), 404 (no such run or path) or 500 (the store
cannot be read, or is damaged).
"""

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar
from urllib.parse import unquote

from fslm.errors import FslmError
from fslm.spec.kinds import message_tables
from fslm.store import DamagedStoreError, RunStore, store_errors, store_problem
from fslm.store.inspection import diff_runs, list_runs, run_details
from fslm.ui.pipeline_layout import run_graph

Reply = tuple[HTTPStatus, dict]
T = TypeVar("T")
MAX_LIMIT = 10_000
# Longer than any file path or run id; control characters name no pipeline and no run.
MAX_TEXT = 4096
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def answer(store: RunStore, path: str, query: dict[str, str]) -> Reply:
    """Answer GET `path` (starting with /api/) with `query`'s single-valued parameters."""
    parts = [unquote(part) for part in path.removeprefix("/api/").strip("/").split("/")]
    try:
        for part in parts:
            _check_text("run id", part, HTTPStatus.NOT_FOUND)
        match parts:
            case ["runs"]:
                return HTTPStatus.OK, runs(store, query)
            case ["runs", run_id]:
                return HTTPStatus.OK, _found(lambda: with_tables(run_details(store, run_id).to_dict()))
            case ["runs", run_id, "graph"]:
                return HTTPStatus.OK, _found(lambda: run_graph(store.index.find(run_id)).to_dict())
            case ["diff"]:
                return HTTPStatus.OK, diff(store, query)
            case _:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no API endpoint {path}")
    except ApiError as error:
        return error.status, {"error": str(error)}
    except DamagedStoreError as error:
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(error)}
    except store_errors() as error:
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": store_problem(store.where, error)}


def with_tables(details: dict) -> dict:
    """A run's details, each stage message with the tables of the records it carries, as its kind shows them
    (the viewer prints them as they are, whatever the kind)."""
    for message in details["messages"]:
        message["tables"] = [table.as_json() for table in message_tables(message)]
    return details


def runs(store: RunStore, query: dict[str, str]) -> dict:
    limit = query.get("limit", "50")
    # isdigit() alone lets "²" through; the bound keeps the value inside SQLite's integers.
    if not re.fullmatch("[0-9]{1,6}", limit) or not 1 <= int(limit) <= MAX_LIMIT:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            f"limit must be a whole number from 1 to {MAX_LIMIT}, not '{_shown(limit)}'",
        )
    pipeline, status = query.get("pipeline") or None, query.get("status") or None
    for name, value in (("pipeline", pipeline), ("status", status)):
        if value is not None:
            _check_text(name, value, HTTPStatus.BAD_REQUEST)
    records = _asked(
        HTTPStatus.BAD_REQUEST, lambda: list_runs(store, pipeline=pipeline, status=status, limit=int(limit))
    )
    return {"runs": [record.to_dict() for record in records]}


def diff(store: RunStore, query: dict[str, str]) -> dict:
    if not query.get("a") or not query.get("b"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "a diff needs two run ids: /api/diff?a=RUN_ID&b=RUN_ID")
    for name in ("a", "b"):
        _check_text("run id", query[name], HTTPStatus.NOT_FOUND)
    a, b, stages = _found(lambda: diff_runs(store, query["a"], query["b"]))
    return {
        "a": a.to_dict(),
        "b": b.to_dict(),
        "stages": [{"stage": s.stage, "a": s.a, "b": s.b, "same": s.same} for s in stages],
    }


def _found(read: Callable[[], T]) -> T:
    """Run a lookup by run id; the store's "no run" (or ambiguous prefix) error becomes a 404."""
    return _asked(HTTPStatus.NOT_FOUND, read)


def _asked(status: HTTPStatus, read: Callable[[], T]) -> T:
    """Run a store read; a user's error (no such run, an unknown status) becomes `status`. A damaged store is
    the server's problem, not the request's: it stays a DamagedStoreError (500)."""
    try:
        return read()
    except DamagedStoreError:
        raise
    except FslmError as error:
        raise ApiError(status, str(error)) from error


def _check_text(name: str, value: str, status: HTTPStatus) -> None:
    if len(value) > MAX_TEXT or CONTROL_CHARACTERS.search(value):
        raise ApiError(status, f"no {name} '{_shown(value)}': it is too long or holds control characters")


def _shown(value: str) -> str:
    """A query value as an error message quotes it: printable and short."""
    text = CONTROL_CHARACTERS.sub("?", value)
    return text if len(text) <= 40 else f"{text[:40]}…"
