"""Reading a run store never writes to it; a file that is not a store, or a damaged one, is exit 2 and left
alone."""

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import ormsgpack
import pytest
from test_graph import HEADER, ScriptedRuntime

from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.pipeline import Pipeline
from fslm.spec import load_spec
from fslm.store import open_store
from fslm.store.inspection import run_details

CHAIN = """
stages:
  a: {model: m, prompt: "A {{ input }}"}
  b: {model: m, prompt: "B {{ a }}"}
"""
READ_COMMANDS = {
    "list": ["runs", "list"],
    "show": ["runs", "show", "RUN"],
    "diff": ["runs", "diff", "RUN", "OTHER"],
    "export": ["runs", "export", "RUN", "--stage", "b"],
}


def fingerprint(file: Path) -> tuple[str, list[str]]:
    """The file's bytes and the names in its folder: a read must change neither."""
    return hashlib.sha256(file.read_bytes()).hexdigest(), sorted(p.name for p in file.parent.iterdir())


def pipeline_file(tmp_path: Path) -> Path:
    """A two-stage pipeline whose model directory looks like a model; nothing loads it."""
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "config.json").write_text("{}")
    path = tmp_path / "p.yaml"
    path.write_text(HEADER % model_dir + CHAIN)
    return path


def record_runs(tmp_path: Path, store_file: Path) -> list[str]:
    """Two runs recorded the way `fslm run` records them, with the store closed afterwards as a process
    exit does."""
    store = open_store(store_file)
    pipeline = Pipeline(
        load_spec(pipeline_file(tmp_path)), ScriptedRuntime({"A ": "a says", "B ": "b says"}), store
    )
    ids = [pipeline.invoke(text).run_id for text in ("first input", "second input")]
    store.close()
    return ids


@pytest.fixture
def recorded(tmp_path) -> tuple[Path, list[str]]:
    store_file = tmp_path / "store" / "runs.sqlite"
    return store_file, record_runs(tmp_path, store_file)


def read_command(name: str, store_file: Path, ids: list[str]) -> list[str]:
    replace = {"RUN": ids[0], "OTHER": ids[1]}
    return [replace.get(arg, arg) for arg in READ_COMMANDS[name]] + ["--store", str(store_file)]


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_leave_a_store_written_by_fslm_byte_identical(recorded, command, capsys):
    store_file, ids = recorded
    assert not Path(f"{store_file}-wal").exists()  # the writer checkpointed and removed it on close
    before = fingerprint(store_file)
    assert main(read_command(command, store_file, ids)) == 0
    assert "a says" in capsys.readouterr().out or command == "list"
    assert fingerprint(store_file) == before  # no -wal or -shm beside it either


def test_a_read_sees_runs_a_writer_has_not_checkpointed_yet(tmp_path, capsys):
    store_file = tmp_path / "runs.sqlite"
    writer = open_store(store_file)
    record_runs(tmp_path, store_file)  # closes its own connections; `writer` keeps the -wal file in use
    assert Path(f"{store_file}-wal").exists()
    assert main(["runs", "list", "--store", str(store_file), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    writer.close()


def test_a_long_lived_reader_sees_runs_recorded_after_it_opened(tmp_path):
    """The web viewer keeps its store open: new runs show, and the reader still adds no file."""
    store_file = tmp_path / "store" / "runs.sqlite"
    record_runs(tmp_path, store_file)
    reader = open_store(store_file, read_only=True)
    assert len(reader.index.list()) == 2
    writer = open_store(store_file)
    (tmp_path / "more").mkdir()
    record_runs(tmp_path / "more", store_file)
    assert len(reader.index.list()) == 4  # read through the writer's -wal file while it is open
    writer.close()
    assert not Path(f"{store_file}-wal").exists()
    newest = reader.index.list()
    assert len(newest) == 4 and run_details(reader, newest[0].run_id).messages[-1]["text"] == "b says"
    reader.close()
    assert sorted(p.name for p in store_file.parent.iterdir()) == ["runs.sqlite"]


def another_programs_database(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('keep me')")
    return path


def clashing_runs_table(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE fslm_runs (id INTEGER PRIMARY KEY, what TEXT)")
        db.execute("INSERT INTO fslm_runs (what) VALUES ('mine')")
    return path


def langgraph_checkpoints_only(path: Path) -> Path:
    from langgraph.checkpoint.sqlite import SqliteSaver

    connection = sqlite3.connect(path)
    SqliteSaver(connection).setup()
    connection.close()
    return path


def not_sqlite(path: Path) -> Path:
    path.write_bytes(b"name,value\nx,1\n" * 50)
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


OTHER_FILES = {
    "another program's database": (another_programs_database, "not an fslm run store"),
    "a clashing fslm_runs table": (clashing_runs_table, "fslm_runs has other columns"),
    "LangGraph's tables alone": (langgraph_checkpoints_only, "no fslm_runs table"),
    "not SQLite": (not_sqlite, "not an SQLite file"),
    "an empty file": (empty_file, "is empty"),
}


@pytest.mark.parametrize("command", READ_COMMANDS)
@pytest.mark.parametrize("kind", OTHER_FILES)
def test_read_commands_refuse_a_file_that_is_not_a_store_and_leave_it_alone(tmp_path, kind, command, capsys):
    make, message = OTHER_FILES[kind]
    file = make(tmp_path / "other.sqlite")
    before = fingerprint(file)
    assert main(read_command(command, file, ["r1", "r2"])) == 2
    assert message in capsys.readouterr().err
    assert fingerprint(file) == before


@pytest.mark.parametrize("kind", [k for k in OTHER_FILES if k != "an empty file"])
def test_a_recording_command_refuses_a_file_that_is_not_a_store_and_leaves_it_alone(tmp_path, kind, capsys):
    make, message = OTHER_FILES[kind]
    file = make(tmp_path / "other.sqlite")
    pipeline = pipeline_file(tmp_path)
    before = fingerprint(file)
    assert main(["run", str(pipeline), "hello", "--store", str(file)]) == 2
    assert message in capsys.readouterr().err
    assert fingerprint(file) == before
    with pytest.raises(FslmError, match=message):
        open_store(file)
    assert fingerprint(file) == before


def test_an_empty_file_becomes_a_store_when_runs_are_recorded(tmp_path):
    file = empty_file(tmp_path / "runs.sqlite")
    record_runs(tmp_path, file)
    assert len(open_store(file, read_only=True).index.list()) == 2


@pytest.mark.parametrize("command", [*READ_COMMANDS, "replay"])
def test_a_mistyped_store_path_is_exit_2_and_creates_nothing(tmp_path, command, capsys):
    missing = tmp_path / "typo" / "runs.sqlite"
    args = ["runs", "replay", "r1", "--from", "a"] if command == "replay" else READ_COMMANDS[command]
    assert (
        main([*[a.replace("RUN", "r1").replace("OTHER", "r2") for a in args], "--store", str(missing)]) == 2
    )
    assert f"no run store at {missing}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_default_store_is_not_created_by_reading(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FSLM_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["runs", "list"]) == 2
    assert "no run store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_directory_as_the_store_is_exit_2(tmp_path, capsys):
    assert main(["runs", "list", "--store", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


# ---- damaged contents --------------------------------------------------------------------------------------


def damage(store_file: Path, sql: str, values: tuple = ()) -> None:
    db = sqlite3.connect(store_file)
    with db:
        db.execute(sql, values)
    db.close()  # the last connection to close removes the -wal file


# A stage message as fslm records it (`StageMessage`), for checkpoints written by hand.
MESSAGE = {
    "stage": "a",
    "text": "a says",
    "model": "m",
    "adapter": None,
    "prompt": "A first input",
    "prompt_tokens": 3,
    "completion_tokens": 2,
    "seconds": 0.5,
}


def checkpoint_with_log(*messages: dict) -> bytes:
    return ormsgpack.packb({"v": 4, "id": "x", "channel_values": {"log": list(messages), "outputs": {}}})


DAMAGE = {
    "a checkpoint blob that is not msgpack": (
        "UPDATE checkpoints SET checkpoint = ?",
        (b"\xc1\xff\x00garbage",),
    ),
    "a checkpoint of another type": ("UPDATE checkpoints SET type = 'pickle'", ()),
    "a checkpoint that decodes to a list": (
        "UPDATE checkpoints SET checkpoint = ?",
        (ormsgpack.packb([1, 2]),),
    ),
    "a stage log of numbers": (
        "UPDATE checkpoints SET checkpoint = ?",
        (ormsgpack.packb({"v": 4, "id": "x", "channel_values": {"log": [1, 2], "outputs": {}}}),),
    ),
    "a stage log message without its model": (
        "UPDATE checkpoints SET checkpoint = ?",
        (checkpoint_with_log({key: value for key, value in MESSAGE.items() if key != "model"}),),
    ),
    "a stage log message whose optional field has the wrong type": (
        "UPDATE checkpoints SET checkpoint = ?",
        (checkpoint_with_log(MESSAGE, {**MESSAGE, "cached_prompt_tokens": "many"}),),
    ),
    "metadata that is not JSON": ("UPDATE checkpoints SET metadata = ?", (b"{not json",)),
    "a start time that is text": ("UPDATE fslm_runs SET started = 'yesterday'", ()),
    "a start time past the calendar": ("UPDATE fslm_runs SET started = 1e300", ()),
    "a duration that is text": ("UPDATE fslm_runs SET seconds = 'long'", ()),
    "an input that is a blob": ("UPDATE fslm_runs SET input = x'00ff'", ()),
    "an unknown status": ("UPDATE fslm_runs SET status = 'exploded'", ()),
}


@pytest.mark.parametrize("command", READ_COMMANDS)
@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_contents_are_exit_2_with_a_message(recorded, kind, command, capsys):
    store_file, ids = recorded
    damage(store_file, *DAMAGE[kind])
    before = fingerprint(store_file)
    code = main(read_command(command, store_file, ids))
    err = capsys.readouterr().err
    if command == "list" and kind.startswith(("a checkpoint", "a stage log", "metadata")):
        assert code == 0  # listing reads the run index alone
    else:
        assert code == 2
        assert "is damaged" in err and "Traceback" not in err
    assert fingerprint(store_file) == before


@pytest.mark.parametrize(
    "kind",
    [
        "a checkpoint blob that is not msgpack",
        "a checkpoint that decodes to a list",
        "a stage log of numbers",
        "a stage log message without its model",
    ],
)
def test_replay_checks_the_earlier_checkpoints_it_reads(recorded, kind, capsys):
    store_file, ids = recorded
    sql, values = DAMAGE[kind]
    latest = "(SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = ?)"
    damage(store_file, f"{sql} WHERE thread_id = ? AND checkpoint_id != {latest}", (*values, ids[0], ids[0]))
    assert main(["runs", "show", ids[0], "--store", str(store_file)]) == 0  # the latest one is sound
    capsys.readouterr()
    code = main(["runs", "replay", ids[0], "--from", "b", "--store", str(store_file)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"is damaged: the saved state of run {ids[0]} cannot be read" in err and "Traceback" not in err


def test_nulls_in_a_hand_made_run_table_are_exit_2(tmp_path, capsys):
    file = tmp_path / "hand.sqlite"
    langgraph_checkpoints_only(file)
    with sqlite3.connect(file) as db:
        db.execute(
            "CREATE TABLE fslm_runs (run_id, pipeline, pipeline_name, pipeline_hash, input, status, started, "
            "seconds, error, parent_id, replay_from, batch_id)"
        )
        db.execute("INSERT INTO fslm_runs (run_id, status, started) VALUES ('r1', 'done', 1.0)")
    for command in ("list", "show", "export"):
        assert main(read_command(command, file, ["r1", "r1"])) == 2
        assert "its pipeline is None, not text" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_runs_list_limit_below_one_is_exit_2(recorded, limit, capsys):
    store_file, _ = recorded
    assert main(["runs", "list", "--limit", limit, "--store", str(store_file)]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_runs_list_with_a_huge_limit_lists_every_run(recorded, capsys):
    store_file, ids = recorded
    assert main(["runs", "list", "--limit", "9" * 30, "--store", str(store_file), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(ids)


def test_runs_list_limit_that_is_not_a_number_is_exit_2(recorded):
    store_file, _ = recorded
    with pytest.raises(SystemExit) as exited:
        main(["runs", "list", "--limit", "²", "--store", str(store_file)])
    assert exited.value.code == 2


@pytest.mark.parametrize("where", ["a directory", "inside a file", "a read-only directory", "/proc"])
def test_runs_export_to_a_place_it_cannot_write_is_exit_2(recorded, tmp_path, where, capsys):
    if where == "a read-only directory" and os.geteuid() == 0:
        pytest.skip("root writes to read-only directories")
    if where == "/proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc file system here")
    store_file, ids = recorded
    target = tmp_path / "out"
    target.mkdir()
    (target / "file").write_text("")
    output = {
        "a directory": target,
        "inside a file": target / "file" / "pairs.jsonl",
        "a read-only directory": target / "pairs.jsonl",
        "/proc": Path("/proc/fslm-pairs.jsonl"),
    }[where]
    target.chmod(0o500 if where == "a read-only directory" else 0o700)
    try:
        assert (
            main(
                [
                    "runs",
                    "export",
                    ids[0],
                    "--stage",
                    "b",
                    "--output",
                    str(output),
                    "--store",
                    str(store_file),
                ]
            )
            == 2
        )
    finally:
        target.chmod(0o700)
    err = capsys.readouterr().err
    assert str(output) in err and "Traceback" not in err
    assert [p.name for p in target.iterdir()] == ["file"]
