"""Recorded runs: replay from a stage, the `fslm runs` commands, bad stores, and durability across
processes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_graph import HEADER, ScriptedRuntime

from fslm import store as store_module
from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.pipeline import Pipeline
from fslm.spec import load_spec
from fslm.store import open_store

REPO = Path(__file__).resolve().parent.parent

CHAIN = """
stages:
  a: {model: m, prompt: "A {{ input }}"}
  b: {model: m, prompt: "B {{ a }}"}
  c: {model: m, prompt: "C {{ b }}"}
"""
TRIAGE = """
stages:
  triage: {model: m, prompt: "T {{ input }}"}
  solve: {model: m, prompt: "S {{ triage }}"}
  chat: {model: m, prompt: "H {{ triage }}"}
edges:
  - from: triage
    when: [{label: math, to: solve}]
    otherwise: chat
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


def scripted(tmp_path: Path, model_dir: Path, body: str, script: dict[str, str], store) -> Pipeline:
    path = tmp_path / "p.yaml"
    path.write_text(HEADER % model_dir + body)
    return Pipeline(load_spec(path), ScriptedRuntime(script), store)


def test_replay_reruns_from_a_stage_with_an_edited_upstream_message(tmp_path, model_dir):
    store = open_store(tmp_path / "runs.sqlite")
    runtime_script = {"A ": "a1", "B ": "b1", "C ": "c1"}
    pipeline = scripted(tmp_path, model_dir, CHAIN, runtime_script, store)
    parent = pipeline.invoke("x")
    pipeline.runtime.script.update({"B ": "b2", "C ": "c2"})
    before = len(pipeline.runtime.requests)

    child = pipeline.replay(parent.run_id, "b", {"a": "edited"})

    assert [m["stage"] for m in child.messages] == ["a", "b", "c"]
    assert child.messages[0]["text"] == "edited" and child.messages[0]["edited"] is True
    assert "logprobs" in parent.messages[0] and "logprobs" not in child.messages[0]  # not the model's text
    assert [m["prompt"] for m in child.messages[1:]] == ["B edited", "C b2"]
    assert len(pipeline.runtime.requests) - before == 2  # a was not re-run
    record = store.index.get(child.run_id)
    assert (record.parent_id, record.replay_from, record.status) == (parent.run_id, "b", "done")
    assert pipeline.result(parent.run_id).messages == parent.messages  # the parent is untouched


def test_resume_after_a_stage_finished_but_its_checkpoint_was_not_written(tmp_path, model_dir):
    """A process killed between saving a stage's writes and the next checkpoint: the stage counts as done."""
    store = open_store(tmp_path / "runs.sqlite")
    pipeline = scripted(tmp_path, model_dir, CHAIN, {"A ": "a1", "B ": "b1", "C ": "c1"}, store)
    run_id = pipeline.batch(["x"], batch_id="cut")[0].run_id
    history = list(pipeline.graph.get_state_history({"configurable": {"thread_id": run_id}}))
    before_a = next(s for s in history if s.next == ("a",)).config["configurable"]["checkpoint_id"]
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        db.execute("DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id > ?", (run_id, before_a))
        db.execute("DELETE FROM writes WHERE thread_id = ? AND checkpoint_id > ?", (run_id, before_a))
    store.index.mark(run_id, "running")
    requests_before = len(pipeline.runtime.requests)

    resumed = pipeline.batch(["x"], batch_id="cut", resume=True)[0]

    assert [m["stage"] for m in resumed.messages] == ["a", "b", "c"]
    assert [r.prompt for r in pipeline.runtime.requests[requests_before:]] == ["B a1", "C b1"]
    assert store.index.get(run_id).status == "done"


def test_replay_with_the_from_stage_edited_reroutes_on_the_new_text(tmp_path, model_dir):
    store = open_store(":memory:")
    pipeline = scripted(
        tmp_path, model_dir, TRIAGE, {"T ": "chat please", "S ": "solved", "H ": "hello"}, store
    )
    parent = pipeline.invoke("2+2")
    assert [m["stage"] for m in parent.messages] == ["triage", "chat"]
    child = pipeline.replay(parent.run_id, "triage", {"triage": "math"})
    assert [(m["stage"], m["text"]) for m in child.messages] == [("triage", "math"), ("solve", "solved")]
    assert child.messages[0]["edited"] is True


def test_replay_refuses_a_changed_pipeline_and_unknown_stages(tmp_path, model_dir):
    store = open_store(":memory:")
    pipeline = scripted(tmp_path, model_dir, CHAIN, {"A ": "a", "B ": "b", "C ": "c"}, store)
    run = pipeline.invoke("x")
    with pytest.raises(FslmError, match="did not run"):
        pipeline.replay(run.run_id, "nope")
    with pytest.raises(FslmError, match="had not run before 'b'"):
        pipeline.replay(run.run_id, "b", {"c": "text"})
    with pytest.raises(FslmError, match="no run 'zzz'"):
        pipeline.replay("zzz", "b")
    changed = scripted(tmp_path, model_dir, CHAIN.replace("A {{", "AA {{"), {}, store)
    with pytest.raises(FslmError, match="changed since"):
        changed.replay(run.run_id, "b")


@pytest.fixture
def recorded(tmp_path, tiny_model) -> tuple[Path, Path, list[str]]:
    """A store with two runs of a two-stage pipeline on the tiny model; returns (pipeline, store, run ids)."""
    path = tmp_path / "two.yaml"
    path.write_text(
        f"""models:
  m: {{source: {tiny_model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "one {{{{ input }}}}", generation: {{max_new_tokens: 6}}}}
  second: {{model: m, prompt: "two {{{{ first }}}}", generation: {{max_new_tokens: 6}}}}
"""
    )
    store = tmp_path / "runs.sqlite"
    from fslm.pipeline import load_pipeline

    pipeline = load_pipeline(path, store=store)
    ids = [pipeline.invoke(text).run_id for text in ("hello", "the cat")]
    pipeline.close()
    return path, store, ids


def cli_json(capsys, *args: str):
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_list_show_diff_export(recorded, capsys, tmp_path):
    path, store, (first, second) = recorded
    runs = cli_json(capsys, "runs", "list", "--store", str(store))
    assert [r["run_id"] for r in runs] == [second, first]
    assert {r["status"] for r in runs} == {"done"} and runs[0]["input"] == "the cat"
    assert cli_json(capsys, "runs", "list", "--store", str(store), "--limit", "1")[0]["run_id"] == second
    assert cli_json(capsys, "runs", "list", "--store", str(store), "--pipeline", "other") == []
    assert len(cli_json(capsys, "runs", "list", "--store", str(store), "--pipeline", str(path))) == 2

    shown = cli_json(capsys, "runs", "show", first[:6], "--store", str(store))
    assert [m["stage"] for m in shown["messages"]] == ["first", "second"]
    assert shown["messages"][0]["prompt"] == "one hello" and shown["pipeline"] == str(path)

    assert main(["runs", "show", first, "--store", str(store), "--prompts"]) == 0
    text = capsys.readouterr().out
    assert "one hello" in text and text.index("first") < text.index("second")

    diff = cli_json(capsys, "runs", "diff", first, second, "--store", str(store))
    assert [s["stage"] for s in diff["stages"]] == ["first", "second"]
    assert diff["stages"][0]["a"] == shown["messages"][0]["text"]

    out = tmp_path / "pairs.jsonl"
    assert (
        main(
            [
                "runs",
                "export",
                "--pipeline",
                "two",
                "--stage",
                "second",
                "--store",
                str(store),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(pairs) == 2 and {p["run_id"] for p in pairs} == {first, second}
    assert all(p["prompt"].startswith("two ") for p in pairs)


def test_runs_replay_from_the_cli(recorded, capsys):
    _, store, (first, _) = recorded
    child = cli_json(
        capsys,
        "runs",
        "replay",
        first,
        "--from",
        "second",
        "--set",
        "first=edited words",
        "--store",
        str(store),
    )
    assert child["parent_id"] == first
    assert child["messages"][1]["prompt"] == "two edited words"
    listed = cli_json(capsys, "runs", "list", "--store", str(store))
    assert listed[0]["run_id"] == child["run_id"] and listed[0]["parent_id"] == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "nope"], "no run 'nope'"),
        (["runs", "replay", "RUN", "--from", "third"], "no stage 'third'"),
        (["runs", "replay", "RUN", "--from", "second", "--set", "bad"], "--set takes STAGE=TEXT"),
        (["runs", "export", "RUN", "--stage", "third"], "stage 'third' has no messages"),
        (["runs", "diff", "RUN", "nope"], "no run 'nope'"),
    ],
)
def test_runs_bad_input_is_exit_2(recorded, capsys, args, message):
    _, store, (first, _) = recorded
    args = [first if a == "RUN" else a for a in args]
    assert main([*args, "--store", str(store)]) == 2
    assert message in capsys.readouterr().err


def test_replay_after_the_pipeline_file_changed_is_exit_2(recorded, capsys):
    path, store, (first, _) = recorded
    path.write_text(path.read_text().replace("two {{", "TWO {{"))
    assert main(["runs", "replay", first, "--from", "second", "--store", str(store)]) == 2
    assert "changed since" in capsys.readouterr().err
    assert len(open_store(store).index.list()) == 2  # nothing recorded, nothing lost


def test_corrupt_store_is_exit_2_and_left_alone(tmp_path, capsys):
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    assert main(["runs", "list", "--store", str(bad)]) == 2
    assert "damaged or not an fslm run store" in capsys.readouterr().err
    assert bad.read_bytes() == b"this is not a database" * 100


def test_locked_store_is_exit_2_without_damage(recorded, capsys, monkeypatch):
    path, store, ids = recorded
    monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 0.2)
    holder = sqlite3.connect(store)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert main(["runs", "list", "--store", str(store)]) == 0  # readers are not blocked (WAL)
        assert main(["run", str(path), "hi", "--store", str(store)]) == 2
        assert "locked" in capsys.readouterr().err
    finally:
        holder.rollback()
        holder.close()
    assert sorted(r.run_id for r in open_store(store).index.list()) == sorted(ids)


def test_token_stream_adds_up_to_each_stage_text(recorded):
    path, store, _ = recorded
    from fslm.pipeline import load_pipeline

    pipeline = load_pipeline(path, store=store)
    events = list(pipeline.stream("a b c", tokens=True))
    pipeline.close()
    messages = [e for e in events if "token" not in e]
    for message in messages:
        streamed = "".join(e["token"] for e in events if e.get("stage") == message["stage"] and "token" in e)
        assert streamed.strip() == message["text"]
    assert [m["stage"] for m in messages] == ["first", "second"]


# A shell starts background jobs with SIGINT ignored and a child inherits that, so Ctrl-C would not reach it:
# the child puts Python's own handler back before it runs the CLI.
CLI_WITH_CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from fslm.cli.main import main; sys.exit(main())"
)


def run_batch(path: Path, inputs: Path, output: Path, store: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI_WITH_CTRL_C,
            "run",
            str(path),
            "--input-file",
            str(inputs),
            "--output",
            str(output),
            "--store",
            str(store),
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def slow_chain(tmp_path, tiny_model) -> Path:
    path = tmp_path / "chain.yaml"
    stages = "".join(
        f'  s{i}: {{model: m, prompt: "{i} {{{{ input }}}}", generation: {{max_new_tokens: 24}}}}\n'
        for i in range(4)
    )
    path.write_text(f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\nstages:\n{stages}")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_interrupted_batch_resumes_without_recomputing_or_losing_anything(slow_chain, tmp_path, stop):
    inputs, output, store = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "runs.sqlite"
    inputs.write_text("\n".join(json.dumps({"input": f"item {i} " * (i % 5 + 1)}) for i in range(40)))
    process = run_batch(slow_chain, inputs, output, store, "--batch-size", "2")
    deadline = time.time() + 120
    done_before: list[str] = []
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        try:
            done_before = [r.run_id for r in open_store(store).index.list(status="done", limit=None)]
        except (FslmError, sqlite3.Error):  # the child may still be creating the store
            continue
        if len(done_before) >= 3:
            break
    assert process.poll() is None, "the batch finished before it could be interrupted; make it longer"
    process.send_signal(stop)
    assert process.wait(timeout=60) == (130 if stop == signal.SIGINT else -signal.SIGKILL)
    assert not output.exists()

    from fslm.store.inspection import run_details

    recorded = open_store(store)
    finished = {run_id: run_details(recorded, run_id).messages for run_id in done_before}
    unfinished = "interrupted" if stop == signal.SIGINT else "running"  # a killed process cannot say
    partial = {
        r.run_id: run_details(recorded, r.run_id).messages
        for r in recorded.index.list(status=unfinished, limit=None)
    }
    assert partial

    resumed = run_batch(slow_chain, inputs, output, store, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 40 and [r["input"] for r in rows] == [f"item {i} " * (i % 5 + 1) for i in range(40)]
    wrong = {
        r["run_id"]: [m["stage"] for m in r["messages"]]
        for r in rows
        if [m["stage"] for m in r["messages"]] != ["s0", "s1", "s2", "s3"]
    }
    assert not wrong
    by_id = {row["run_id"]: row["messages"] for row in rows}
    for run_id, messages in finished.items():
        assert by_id[run_id] == messages  # same seconds too: read back, not recomputed
    for run_id, messages in partial.items():
        assert by_id[run_id][: len(messages)] == messages  # finished stages kept, the rest continued
    statuses = {r.run_id: r.status for r in open_store(store).index.list(limit=None)}
    assert set(statuses.values()) == {"done"}, statuses


@pytest.mark.slow
def test_resume_with_nothing_to_resume_is_exit_2(slow_chain, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"input": "x"}\n')
    done = run_batch(slow_chain, inputs, tmp_path / "o.jsonl", tmp_path / "r.sqlite", "--resume")
    assert done.wait() == 2 and "nothing to resume" in done.stderr.read()


@pytest.mark.slow
def test_two_processes_write_one_store_at_once(slow_chain, tmp_path):
    store = tmp_path / "runs.sqlite"
    processes = []
    for name in ("a", "b"):
        inputs = tmp_path / f"{name}.jsonl"
        inputs.write_text("\n".join(json.dumps({"input": f"{name} {i}"}) for i in range(8)))
        processes.append(
            run_batch(slow_chain, inputs, tmp_path / f"{name}.out.jsonl", store, "--batch-size", "2")
        )
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    runs = open_store(store).index.list(limit=None)
    assert len(runs) == 16 and all(r.status == "done" for r in runs)
    from fslm.store.inspection import run_details

    assert all(len(run_details(open_store(store), r.run_id).messages) == 4 for r in runs)
    assert os.stat(store).st_mode & 0o077 == 0
