"""The run store in PostgreSQL: the same contract as the SQLite store (every `fslm runs` command, replay,
resume, the viewer), read-only reads, foreign and missing databases refused, concurrent writers, and the
password kept out of everything fslm writes or prints.

A real server is started for these tests (tests/postgres_server.py); without one they skip, except under CI,
where they fail.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_graph import HEADER, ScriptedRuntime

from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.pipeline import Pipeline, load_pipeline
from fslm.spec import load_spec
from fslm.store import open_store
from fslm.store.inspection import run_details

psycopg = pytest.importorskip(
    "psycopg", reason="the postgres extra is not installed: pip install 'fslm[postgres]'"
)
import postgres_server

REPO = Path(__file__).resolve().parent.parent
CHAIN = """
stages:
  a: {model: m, prompt: "A {{ input }}"}
  b: {model: m, prompt: "B {{ a }}"}
"""


@pytest.fixture(scope="module")
def server():
    try:
        running = postgres_server.start_server()
    except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server could start here: {error}")
    yield running
    running.stop()


@pytest.fixture
def database(server) -> str:
    return server.create_database(f"t_{uuid.uuid4().hex[:10]}")


def table_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table: a read must change none."""
    with psycopg.connect(url) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        ]
        return {name: sorted(connection.execute(f'SELECT * FROM "{name}"').fetchall()) for name in names}


def scripted_pipeline(tmp_path: Path, store) -> Pipeline:
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "config.json").write_text("{}")
    path = tmp_path / "p.yaml"
    path.write_text(HEADER % model_dir + CHAIN)
    return Pipeline(load_spec(path), ScriptedRuntime({"A ": "a says", "B ": "b says"}), store)


@pytest.fixture
def recorded(tmp_path, tiny_model, database) -> tuple[Path, str, list[str]]:
    """Two runs of a two-stage pipeline on the tiny model, recorded in Postgres: (pipeline, URL, run ids)."""
    path = tmp_path / "two.yaml"
    path.write_text(
        f"""models:
  m: {{source: {tiny_model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "one {{{{ input }}}}", generation: {{max_new_tokens: 6}}}}
  second: {{model: m, prompt: "two {{{{ first }}}}", generation: {{max_new_tokens: 6}}}}
"""
    )
    pipeline = load_pipeline(path, store=database)
    ids = [pipeline.invoke(text).run_id for text in ("hello", "the cat")]
    pipeline.close()
    pipeline.store.close()
    return path, database, ids


def cli_json(capsys, *args: str):
    assert main([*args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_runs_commands_replay_and_export_work_on_postgres(recorded, capsys, tmp_path):
    path, url, (first, second) = recorded
    runs = cli_json(capsys, "runs", "list", "--store", url)
    assert [r["run_id"] for r in runs] == [second, first] and {r["status"] for r in runs} == {"done"}
    assert cli_json(capsys, "runs", "list", "--store", url, "--limit", "1")[0]["run_id"] == second
    assert len(cli_json(capsys, "runs", "list", "--store", url, "--pipeline", str(path))) == 2
    shown = cli_json(capsys, "runs", "show", first[:6], "--store", url)
    assert [m["stage"] for m in shown["messages"]] == ["first", "second"]
    assert shown["messages"][0]["prompt"] == "one hello"
    diff = cli_json(capsys, "runs", "diff", first, second, "--store", url)
    assert diff["stages"][0]["a"] == shown["messages"][0]["text"]

    child = cli_json(
        capsys, "runs", "replay", first, "--from", "second", "--set", "first=edited", "--store", url
    )
    assert child["parent_id"] == first and child["messages"][1]["prompt"] == "two edited"
    assert cli_json(capsys, "runs", "list", "--store", url)[0]["parent_id"] == first

    out = tmp_path / "pairs.jsonl"
    assert (
        main(
            ["runs", "export", "--pipeline", "two", "--stage", "second", "--store", url, "--output", str(out)]
        )
        == 0
    )
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert {p["run_id"] for p in pairs} == {first, second, child["run_id"]}


def test_fslm_store_names_the_database(recorded, capsys, monkeypatch):
    _, url, ids = recorded
    monkeypatch.setenv("FSLM_STORE", url)
    assert main(["runs", "list", "--json"]) == 0
    assert {r["run_id"] for r in json.loads(capsys.readouterr().out)} == set(ids)


def test_read_commands_change_no_row_and_cannot_write(recorded, capsys):
    _, url, (first, second) = recorded
    before = table_rows(url)
    for args in (
        ["runs", "list"],
        ["runs", "show", first],
        ["runs", "diff", first, second],
        ["runs", "export", first, "--stage", "second"],
    ):
        assert main([*args, "--store", url]) == 0
    assert table_rows(url) == before
    store = open_store(url, read_only=True)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        store.index.mark(first, "failed")
    store.close()


def test_the_viewer_reads_a_postgres_store(recorded):
    from fslm.ui.api import answer

    _, url, (first, _) = recorded
    store = open_store(url, read_only=True)
    status, payload = answer(store, "/api/runs", {})
    assert status == 200 and len(payload["runs"]) == 2
    status, payload = answer(store, f"/api/runs/{first}", {})
    assert status == 200 and [m["stage"] for m in payload["messages"]] == ["first", "second"]
    store.close()


def test_resume_reads_finished_items_back_and_continues_the_rest(tmp_path, database):
    pipeline = scripted_pipeline(tmp_path, open_store(database))
    done = pipeline.batch(["x", "y", "z"], batch_id="cut")
    cut = done[1].run_id
    history = list(pipeline.graph.get_state_history({"configurable": {"thread_id": cut}}))
    before_b = next(s for s in history if s.next == ("b",)).config["configurable"]["checkpoint_id"]
    with psycopg.connect(database, autocommit=True) as connection:
        # As if the process died while stage b ran: b's writes and everything after are gone.
        connection.execute(
            "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id > %s", (cut, before_b)
        )
        connection.execute(
            "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id >= %s", (cut, before_b)
        )
    pipeline.store.index.mark(cut, "running")
    requests_before = len(pipeline.runtime.requests)

    resumed = pipeline.batch(["x", "y", "z"], batch_id="cut", resume=True)

    assert [r.messages for r in resumed] == [r.messages for r in done]
    assert [r.prompt for r in pipeline.runtime.requests[requests_before:]] == ["B a says"]
    assert {r.status for r in pipeline.store.index.list(limit=None)} == {"done"}


def test_an_empty_database_is_not_a_store_to_read_and_gets_no_table(server, database, capsys):
    assert main(["runs", "list", "--store", database]) == 2
    assert "the database is empty" in capsys.readouterr().err
    assert table_rows(database) == {}


@pytest.mark.parametrize(
    "foreign",
    ["CREATE TABLE checkpoints (x INTEGER)", "CREATE TABLE customers (name TEXT)"],
    ids=["clashing-table", "other-tables"],
)
def test_a_database_that_is_not_a_store_is_refused_and_left_alone(tmp_path, database, foreign, capsys):
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(foreign)
    before = table_rows(database)
    for store_args in (["runs", "list"], ["runs", "show", "x"]):
        assert main([*store_args, "--store", database]) == 2
        assert "not an fslm run store" in capsys.readouterr().err
    with pytest.raises(FslmError, match="not an fslm run store"):
        open_store(database)
    assert table_rows(database) == before


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["password", "port", "database"])
def test_an_unreachable_store_is_exit_2_and_never_shows_the_password(server, problem, capsys):
    url = {
        "password": server.url("postgres").replace(postgres_server.PASSWORD, "wrong-pw-77"),
        "port": server.url("postgres").replace(f":{server.port}/", ":1/"),
        "database": server.url("no_such_database"),
    }[problem]
    assert main(["runs", "list", "--store", url]) == 2
    err = capsys.readouterr().err
    assert "cannot be used" in err and "127.0.0.1" in err
    assert postgres_server.PASSWORD not in err and "wrong-pw-77" not in err


def test_the_password_appears_in_no_record_log_or_export(tmp_path, tiny_model, database, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\n"
        'stages:\n  a: {model: m, prompt: "A {{ input }}", generation: {max_new_tokens: 4}}\n'
    )
    inputs, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text('{"input": "x"}\n{"input": "y"}\n')
    assert main(["run", str(path), "hi", "--store", database]) == 0
    assert (
        main(["run", str(path), "--input-file", str(inputs), "--output", str(output), "--store", database])
        == 0
    )
    assert main(["runs", "export", "--pipeline", str(path), "--stage", "a", "--store", database]) == 0
    assert main(["runs", "list", "--store", database]) == 0
    printed = capsys.readouterr()
    everything = repr(table_rows(database)) + printed.out + printed.err + output.read_text()
    assert postgres_server.PASSWORD not in everything
    assert postgres_server.PASSWORD.encode().hex() not in everything  # nor inside a checkpoint's bytes
    assert open_store(database, read_only=True).where.count(postgres_server.PASSWORD) == 0


def test_two_processes_write_one_new_database_at_once(tmp_path, tiny_model, database):
    """Both create the tables at the same moment, then record 8 runs each; nothing is lost."""
    path = tmp_path / "chain.yaml"
    stages = "".join(
        f'  s{i}: {{model: m, prompt: "{i} {{{{ input }}}}", generation: {{max_new_tokens: 8}}}}\n'
        for i in range(3)
    )
    path.write_text(f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\nstages:\n{stages}")
    processes = []
    for name in ("a", "b"):
        inputs = tmp_path / f"{name}.jsonl"
        inputs.write_text("\n".join(json.dumps({"input": f"{name} {i}"}) for i in range(8)))
        command = ["run", str(path), "--input-file", str(inputs), "--output", str(tmp_path / f"{name}.out")]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "fslm.cli.main", *command, "--store", database, "--batch-size", "2"],
                cwd=REPO,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    store = open_store(database, read_only=True)
    runs = store.index.list(limit=None)
    assert len(runs) == 16 and {r.status for r in runs} == {"done"}
    assert all(len(run_details(store, r.run_id).messages) == 3 for r in runs)


SCHEMA_SNAPSHOT = Path(__file__).parent / "data" / "postgres_store_schema.sql"


def test_a_store_created_by_todays_schema_opens(tmp_path, database, capsys):
    """tests/data/postgres_store_schema.sql is `pg_dump` of a store fslm created (one run recorded); later
    versions of fslm and of langgraph-checkpoint-postgres must still read it, and record into it."""
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(SCHEMA_SNAPSHOT.read_text())
    [recorded] = cli_json(capsys, "runs", "list", "--store", database)
    shown = cli_json(capsys, "runs", "show", recorded["run_id"], "--store", database)
    assert [m["text"] for m in shown["messages"]] == ["a says", "b says"]
    pipeline = scripted_pipeline(tmp_path, open_store(database))
    pipeline.invoke("new input")
    assert len(open_store(database, read_only=True).index.list()) == 2


def test_a_database_url_without_the_postgres_extra_is_exit_2_naming_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    assert main(["runs", "list", "--store", "postgresql://someone:pw@db.example/runs"]) == 2
    assert "pip install 'fslm[postgres]'" in capsys.readouterr().err


def test_stores_opened_at_once_on_a_new_database_all_open(database):
    """Each waits for the one creating the tables, then finds a whole store, not a half-made one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=6) as pool:
        stores = list(pool.map(lambda _: open_store(database), range(6)))
    assert all(store.index.list() == [] for store in stores)
    for store in stores:
        store.close()
