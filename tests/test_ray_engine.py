"""The Ray engine (`--engine ray`): the same outputs and store records as the local engine, a killed worker's
items run again and recorded once, a killed driver resumed without recomputing, and the missing extra or bad
flags as exit 2. One local Ray (2 CPUs) serves the module; the subprocess drivers join it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fslm.cli.main import main
from fslm.engines.ray_engine import RayOptions, RayPipeline
from fslm.errors import FslmError
from fslm.pipeline import load_pipeline
from fslm.store import open_store
from fslm.store.inspection import run_details

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'fslm[ray]'")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray with 2 CPUs; its address, for drivers in other processes."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def chain(tmp_path, tiny_model) -> Path:
    path = tmp_path / "chain.yaml"
    stages = "".join(
        f'  s{i}: {{model: m, prompt: "{i} {{{{ input }}}}", generation: {{max_new_tokens: 8}}}}\n'
        for i in range(3)
    )
    path.write_text(f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\nstages:\n{stages}")
    return path


def items(count: int) -> list[str]:
    return [f"item {i} " * (i % 4 + 1) for i in range(count)]


def write_inputs(path: Path, count: int) -> Path:
    path.write_text("\n".join(json.dumps({"input": text}) for text in items(count)))
    return path


def generated(rows: list[dict]) -> list:
    """What greedy decoding decides: inputs, outputs, and each stage's prompt and text (not its timing)."""
    return [
        (row["input"], row["output"], [(m["stage"], m["prompt"], m["text"]) for m in row["messages"]])
        for row in rows
    ]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ray_outputs_and_records_equal_the_local_engines(cluster, chain, tmp_path, capsys):
    inputs = write_inputs(tmp_path / "in.jsonl", 10)
    store = tmp_path / "runs.sqlite"
    common = ["run", str(chain), "--input-file", str(inputs), "--store", str(store), "--batch-size", "4"]
    assert main([*common, "--output", str(tmp_path / "local.jsonl")]) == 0
    ray_command = [*common, "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--actors", "2"]
    assert main(ray_command) == 0, capsys.readouterr().err

    local, on_ray = read_rows(tmp_path / "local.jsonl"), read_rows(tmp_path / "ray.jsonl")
    assert generated(on_ray) == generated(local)
    recorded = open_store(store, read_only=True)
    for row in on_ray:
        record = recorded.index.get(row["run_id"])
        assert record.status == "done" and record.batch_id == row["run_id"].rsplit("-", 1)[0]
        assert run_details(recorded, row["run_id"]).messages == row["messages"]
    assert main(["runs", "replay", on_ray[0]["run_id"], "--from", "s2", "--store", str(store), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert [m["text"] for m in replayed["messages"]] == [m["text"] for m in on_ray[0]["messages"]]


def test_a_killed_worker_s_items_run_again_and_each_is_recorded_once(cluster, chain, tmp_path):
    store = open_store(tmp_path / "runs.sqlite")
    local = load_pipeline(chain, store=store, max_batch_size=2).batch(items(16))
    engine = RayPipeline(load_pipeline(chain, store=store, max_batch_size=2), RayOptions(actors=2))
    killed: list[int] = []

    def kill_a_worker(index, result) -> None:
        if not killed:
            process = ray.get(engine.actors[0].__ray_call__.remote(lambda worker: os.getpid()))
            os.kill(process, signal.SIGKILL)
            killed.append(process)

    try:
        results = engine.batch(items(16), batch_id="faults", on_done=kill_a_worker)
        restarted = ray.get(engine.actors[0].__ray_call__.remote(lambda worker: os.getpid()))
    finally:
        engine.close()
    assert killed and restarted != killed[0]  # the worker did die, and Ray started another
    assert [r.run_id for r in results] == [f"faults-{i:05d}" for i in range(16)]
    assert [(r.input, r.output, r.messages and [m["text"] for m in r.messages]) for r in results] == [
        (r.input, r.output, [m["text"] for m in r.messages]) for r in local
    ]
    runs = store.index.list(batch_id="faults", limit=None)
    assert sorted(r.run_id for r in runs) == [f"faults-{i:05d}" for i in range(16)]
    assert {r.status for r in runs} == {"done"}
    for result in results:  # one run per item: no stage recorded twice
        assert [m["stage"] for m in run_details(store, result.run_id).messages] == ["s0", "s1", "s2"]


def driver(
    chain: Path, inputs: Path, output: Path, store: Path, address: str, *extra: str
) -> subprocess.Popen:
    command = ["run", str(chain), "--input-file", str(inputs), "--output", str(output), "--store", str(store)]
    return subprocess.Popen(
        [sys.executable, "-m", "fslm.cli.main", *command, "--engine", "ray", "--address", address, *extra],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished_runs(store: Path) -> list:
    """The store's finished runs; none while the driver has created the file but not yet its tables."""
    try:
        return open_store(store, read_only=True).index.list(status="done", limit=None)
    except FslmError:
        return []


def test_resume_after_the_driver_is_killed_recomputes_no_finished_item(cluster, chain, tmp_path):
    inputs, output, store = (
        write_inputs(tmp_path / "in.jsonl", 40),
        tmp_path / "out.jsonl",
        tmp_path / "r.sqlite",
    )
    process = driver(chain, inputs, output, store, cluster, "--batch-size", "2")
    deadline, finished = time.time() + 240, []
    while time.time() < deadline and process.poll() is None and len(finished) < 4:
        time.sleep(0.3)
        if store.exists():
            finished = finished_runs(store)
    assert process.poll() is None, "the batch ended before it could be killed; make it longer"
    process.kill()
    process.wait(timeout=30)
    before = {r.run_id: run_details(open_store(store, read_only=True), r.run_id).messages for r in finished}

    resumed = driver(chain, inputs, output, store, cluster, "--batch-size", "2", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    rows = read_rows(output)
    assert [row["input"] for row in rows] == items(40)
    by_id = {row["run_id"]: row["messages"] for row in rows}
    for run_id, messages in before.items():
        assert by_id[run_id] == messages  # the same seconds too: read back, not recomputed
    runs = open_store(store, read_only=True).index.list(limit=None)
    assert len(runs) == 40 and {r.status for r in runs} == {"done"}
    assert all([m["stage"] for m in messages] == ["s0", "s1", "s2"] for messages in by_id.values())


def test_eval_on_ray_scores_as_the_local_engine_does(cluster, chain, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps({"input": text, "answer": "x"}) for text in items(6)))
    for engine in ("local", "ray"):
        args = ["eval", str(chain), "--data", str(data), "--metric", "contains", "--engine", engine]
        output = tmp_path / f"{engine}.eval.jsonl"
        assert main([*args, "--output", str(output), "--store", str(tmp_path / "r.sqlite")]) == 0
    capsys.readouterr()
    keep = ("input", "output", "score")
    local, on_ray = read_rows(tmp_path / "local.eval.jsonl"), read_rows(tmp_path / "ray.eval.jsonl")
    assert [{k: r[k] for k in keep} for r in on_ray] == [{k: r[k] for k in keep} for r in local]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--engine", "ray", "--actors", "0"], "--actors must be at least 1"),
        (["--actors", "2"], "for the Ray engine only; add --engine ray"),
        (["--engine", "ray", "--gpus-per-actor", "-1"], "--gpus-per-actor must be 0 or more"),
    ],
)
def test_bad_engine_flags_are_exit_2_and_write_nothing(chain, tmp_path, extra, message, capsys):
    inputs, output, store = (
        write_inputs(tmp_path / "in.jsonl", 2),
        tmp_path / "o.jsonl",
        tmp_path / "s.sqlite",
    )
    command = ["run", str(chain), "--input-file", str(inputs), "--output", str(output), "--store", str(store)]
    assert main([*command, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists() and not store.exists()


def test_one_input_on_ray_is_exit_2(chain, capsys):
    assert main(["run", str(chain), "hello", "--engine", "ray"]) == 2
    assert "give them with --input-file" in capsys.readouterr().err


def test_without_the_ray_extra_engine_ray_is_exit_2_naming_it(chain, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    inputs, output, store = (
        write_inputs(tmp_path / "in.jsonl", 2),
        tmp_path / "o.jsonl",
        tmp_path / "s.sqlite",
    )
    command = ["run", str(chain), "--input-file", str(inputs), "--output", str(output), "--store", str(store)]
    assert main([*command, "--engine", "ray"]) == 2
    assert "pip install 'fslm[ray]'" in capsys.readouterr().err
    assert not output.exists() and not store.exists()
    data = tmp_path / "d.jsonl"
    data.write_text('{"input": "x", "answer": "y"}\n')
    assert main(["eval", str(chain), "--data", str(data), "--metric", "exact", "--engine", "ray"]) == 2
    assert "pip install 'fslm[ray]'" in capsys.readouterr().err


def test_teacher_data_on_ray_equals_the_local_teachers(cluster, chain, tiny_model, tmp_path):
    from fslm.finetune.recipe import TeacherSource
    from fslm.finetune.sources import examples_from_teacher
    from fslm.spec import load_spec

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"question": text}) + "\n" for text in items(5)))
    examples = {}
    for engine in ("local", "ray"):
        source = TeacherSource(
            model=str(tiny_model), inputs=inputs, field="question", store=tmp_path / f"{engine}.sqlite"
        )
        wrap = (lambda pipeline: RayPipeline(pipeline, RayOptions(actors=1))) if engine == "ray" else None
        examples[engine] = examples_from_teacher(source, load_spec(chain), "s1", ["s0"], engine=wrap)
    assert [e.variables for e in examples["ray"]] == [e.variables for e in examples["local"]]
    assert [e.target for e in examples["ray"]] == [e.target for e in examples["local"]]
    assert len(open_store(tmp_path / "ray.sqlite", read_only=True).index.list(status="done")) == 5


def test_finetune_engine_ray_without_a_teacher_is_exit_2(chain, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"input": "q", "target": "t"}\n')
    command = ["finetune", str(chain), "--stage", "s1", "--data", str(data), "--output", str(tmp_path / "o")]
    assert main([*command, "--engine", "ray"]) == 2
    assert "comes from no teacher" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ray_records_runs_into_a_postgres_store_as_the_local_engine_does(cluster, chain, tmp_path, capsys):
    pytest.importorskip("psycopg", reason="the postgres extra is not installed: pip install 'fslm[postgres]'")
    import postgres_server

    try:
        server = postgres_server.start_server()
    except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server could start here: {error}")
    try:
        url = server.create_database("ray_runs")
        inputs = write_inputs(tmp_path / "in.jsonl", 6)
        common = ["run", str(chain), "--input-file", str(inputs), "--store", url]
        assert main([*common, "--output", str(tmp_path / "local.jsonl")]) == 0
        assert (
            main([*common, "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--actors", "2"]) == 0
        )
        local, on_ray = read_rows(tmp_path / "local.jsonl"), read_rows(tmp_path / "ray.jsonl")
        assert generated(on_ray) == generated(local)
        store = open_store(url, read_only=True)
        for row in on_ray:
            assert store.index.get(row["run_id"]).status == "done"
            assert run_details(store, row["run_id"]).messages == row["messages"]
        first = on_ray[0]["run_id"]
        assert main(["runs", "replay", first, "--from", "s1", "--store", url, "--json"]) == 0
        replayed = json.loads(capsys.readouterr().out[-100000:].splitlines()[-1])
        assert [m["text"] for m in replayed["messages"]] == [m["text"] for m in on_ray[0]["messages"]]
        store.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("extra", "short"), [(["--actors", "3"], "3 CPUs (it has 2)"), (["--gpus-per-actor", "1"], "1 GPUs")]
)
def test_actors_the_cluster_cannot_hold_are_exit_2(cluster, chain, tmp_path, extra, short, capsys):
    inputs, output = write_inputs(tmp_path / "in.jsonl", 2), tmp_path / "o.jsonl"
    command = ["run", str(chain), "--input-file", str(inputs), "--output", str(output), "--engine", "ray"]
    assert main([*command, "--store", str(tmp_path / "s.sqlite"), *extra]) == 2
    assert short in capsys.readouterr().err
    assert not output.exists()
