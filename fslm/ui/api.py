"""The viewer's JSON API: a path and query in, a status and a JSON-ready payload out (no HTTP here).

    GET /api/runs?pipeline=NAME&status=done&limit=50   recorded runs, newest first
    GET /api/runs/RUN_ID                               one run: its record, stage messages and outputs
    GET /api/runs/RUN_ID/graph                         the graph of the run's pipeline
    GET /api/diff?a=RUN_ID&b=RUN_ID                    two runs' stage outputs side by side

Errors are `{"error": message}` with status 400 (bad query), 404 (no such run or path) or 500 (the store
cannot be read).
"""

import sqlite3
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar
from urllib.parse import unquote

from fslm.errors import FslmError
from fslm.inspection import diff_runs, list_runs, run_details
from fslm.store import RunStore, store_problem
from fslm.ui.graph import run_graph

Reply = tuple[HTTPStatus, dict]
T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def answer(store: RunStore, path: str, query: dict[str, str]) -> Reply:
    """Answer GET `path` (starting with /api/) with `query`'s single-valued parameters."""
    parts = [unquote(part) for part in path.removeprefix("/api/").strip("/").split("/")]
    try:
        match parts:
            case ["runs"]:
                return HTTPStatus.OK, runs(store, query)
            case ["runs", run_id]:
                return HTTPStatus.OK, _found(lambda: run_details(store, run_id).to_dict())
            case ["runs", run_id, "graph"]:
                return HTTPStatus.OK, _found(lambda: run_graph(store.index.find(run_id)).to_dict())
            case ["diff"]:
                return HTTPStatus.OK, diff(store, query)
            case _:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no API endpoint {path}")
    except ApiError as error:
        return error.status, {"error": str(error)}
    except sqlite3.DatabaseError as error:
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": store_problem(store.path, error)}


def runs(store: RunStore, query: dict[str, str]) -> dict:
    limit = query.get("limit", "50")
    if not limit.isdigit():
        raise ApiError(HTTPStatus.BAD_REQUEST, f"limit must be a whole number, not '{limit}'")
    try:
        records = list_runs(
            store, pipeline=query.get("pipeline") or None, status=query.get("status") or None, limit=int(limit)
        )
    except FslmError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(error)) from error
    return {"runs": [record.to_dict() for record in records]}


def diff(store: RunStore, query: dict[str, str]) -> dict:
    if not query.get("a") or not query.get("b"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "a diff needs two run ids: /api/diff?a=RUN_ID&b=RUN_ID")
    a, b, stages = _found(lambda: diff_runs(store, query["a"], query["b"]))
    return {
        "a": a.to_dict(),
        "b": b.to_dict(),
        "stages": [{"stage": s.stage, "a": s.a, "b": s.b, "same": s.same} for s in stages],
    }


def _found(read: Callable[[], T]) -> T:
    """Run a lookup by run id; the store's "no run" (or ambiguous prefix) error becomes a 404."""
    try:
        return read()
    except FslmError as error:
        raise ApiError(HTTPStatus.NOT_FOUND, str(error)) from error
