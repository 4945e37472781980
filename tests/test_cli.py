"""The `fslm` command: exit codes and output, run as a user runs it (a subprocess) where it matters."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fslm.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def fslm(*args: str, store: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--store", str(store)] if store else []
    return subprocess.run(
        [sys.executable, "-m", "fslm.cli.main", *args, *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def two_stage(tmp_path, tiny_model) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(
        f"""models:
  m: {{source: {tiny_model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "one {{{{ input }}}}", generation: {{max_new_tokens: 6}}}}
  second: {{model: m, prompt: "two {{{{ first }}}}", generation: {{max_new_tokens: 6}}}}
"""
    )
    return path


@pytest.mark.slow
def test_run_json_prints_one_object_with_every_stage(two_stage, tmp_path):
    done = fslm("run", str(two_stage), "hello", "--json", store=tmp_path / "runs.sqlite")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= {"run_id", "output", "messages"}
    assert [m["stage"] for m in result["messages"]] == ["first", "second"]
    assert result["output"] == result["messages"][-1]["text"]
    assert result["messages"][0]["prompt"] == "one hello"
    assert {"model", "adapter", "prompt_tokens", "completion_tokens", "seconds"} <= set(result["messages"][0])
    assert (tmp_path / "runs.sqlite").stat().st_mode & 0o077 == 0


def test_run_shows_each_stage_then_the_output(two_stage, tmp_path, capsys):
    assert main(["run", str(two_stage), "hello", "--store", str(tmp_path / "r.sqlite")]) == 0
    shown = capsys.readouterr().out
    assert shown.index("first") < shown.index("second") < shown.index("output")


@pytest.mark.slow
def test_run_input_file_writes_results_in_order(two_stage, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join(json.dumps({"input": t, "id": i}) for i, t in enumerate(["a", "b c", "d"])))
    output = tmp_path / "out" / "results.jsonl"
    done = fslm(
        "run",
        str(two_stage),
        "--input-file",
        str(inputs),
        "--output",
        str(output),
        store=tmp_path / "runs.sqlite",
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["input"] for row in rows] == ["a", "b c", "d"]
    assert all(len(row["messages"]) == 2 for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "x"}'], "no text field 'input'; fields there: question"),
        (['{"input": "x"}', "{not json"], ":2: not valid JSON"),
        ([""], "holds no inputs"),
        ([b'{"input": "caf\xe9"}'], "is not UTF-8 text"),
    ],
)
def test_bad_input_file_is_exit_2_and_writes_nothing(two_stage, tmp_path, lines, message):
    inputs = tmp_path / "in.jsonl"
    if isinstance(lines[0], bytes):
        inputs.write_bytes(b"\n".join(lines))
    else:
        inputs.write_text("\n".join(lines))
    output = tmp_path / "out.jsonl"
    done = fslm("run", str(two_stage), "--input-file", str(inputs), "--output", str(output))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not output.exists()


@pytest.mark.slow
def test_validate_reports_every_problem_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  m: {source: smollm2-135m-instruct}\nstages:\n"
        "  a: {model: mm, prompt: '{{ input }}'}\n"
        "  b: {model: m, prompt: '{{ c }}', generation: {top_p: 2}}\n"
    )
    done = fslm("validate", str(bad))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{bad}:4:" in done.stderr and "did you mean 'm'" in done.stderr
    assert f"{bad}:5:" in done.stderr and "top_p" in done.stderr and "'c'" in done.stderr


@pytest.mark.slow
def test_validate_and_graph_on_shipped_pipelines():
    shipped = sorted((REPO / "pipelines").glob("*.yaml"))
    names = {path.stem for path in shipped}
    assert {"demo", "branching", "math_router", "unite_trivia", "unite_piqa"} <= names
    for path in shipped:
        done = fslm("validate", str(path))
        assert done.returncode == 0, done.stderr
    graph = fslm("graph", "pipelines/branching.yaml")
    assert graph.returncode == 0
    assert "numbers -.-> solve" in graph.stdout and "numbers -.-> explain" in graph.stdout
    routed = fslm("graph", "pipelines/math_router.yaml")
    assert routed.returncode == 0
    assert "route -.-> solve" in routed.stdout and "route -.-> reply" in routed.stdout


@pytest.mark.slow
def test_run_with_a_model_that_cannot_be_found_is_exit_2(tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    path = tmp_path / "p.yaml"
    path.write_text(f"models:\n  m: {{source: {empty}}}\nstages:\n  a: {{model: m, prompt: x}}\n")
    done = fslm("run", str(path), "hi", store=tmp_path / "runs.sqlite")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_usage_errors_are_exit_2(two_stage):
    assert fslm("run", str(two_stage)).returncode == 2
    assert fslm("run", str(two_stage), "x", "--input-file", "f.jsonl").returncode == 2
    assert fslm("models", "pull", "no-such-model").returncode == 2
    assert fslm("validate", "no/such/file.yaml").returncode == 2


@pytest.mark.slow
def test_models_list_shows_the_builtin():
    done = fslm("models", "list")
    assert done.returncode == 0 and "smollm2-135m-instruct" in done.stdout
