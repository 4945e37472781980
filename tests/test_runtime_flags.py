"""The runtime flags of the commands that generate: `--no-prefix-reuse` and `--prefix-cache-mb` reach the
runtime, and bad values exit with code 2 before anything loads or is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fslm.pipeline
from fslm.cli.main import main
from fslm.runtime.prefix_cache import DEFAULT_PREFIX_CACHE_BYTES, MIN_SHARED_TOKENS

FEW_SHOT = (
    "Question: what is two plus two? Answer: four. Question: where is Paris? Answer: the capital of France. "
    "Question: what does the cat do? Answer: the cat sat on the mat. Question: "
)


@pytest.fixture
def few_shot(tmp_path: Path, tiny_model: Path) -> tuple[Path, Path]:
    """A few-shot pipeline and a JSONL file of its inputs."""
    pipeline = tmp_path / "few_shot.yaml"
    pipeline.write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\nstages:\n  answer:\n    model: m\n"
        f"    prompt: '{FEW_SHOT}{{{{ input }}}}'\n    generation: {{max_new_tokens: 4}}\n"
    )
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join(json.dumps({"input": q}) for q in ["who sat?", "what boils?", "where?"]))
    return pipeline, inputs


@pytest.fixture
def runtime_options(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every Runtime a pipeline makes."""
    made: list[dict[str, Any]] = []
    real = fslm.pipeline.Runtime

    def recording(models: Any, **options: Any) -> Any:
        made.append(options)
        return real(models, **options)

    monkeypatch.setattr(fslm.pipeline, "Runtime", recording)
    return made


def run_file(few_shot: tuple[Path, Path], tmp_path: Path, *flags: str) -> list[dict]:
    pipeline, inputs = few_shot
    output = tmp_path / "out.jsonl"
    store = str(tmp_path / "runs.sqlite")
    command = ["run", str(pipeline), "--input-file", str(inputs), "--output", str(output), "--store", store]
    assert main([*command, *flags]) == 0
    return [json.loads(line)["messages"][0] for line in output.read_text().splitlines()]


def test_no_prefix_reuse_computes_every_prompt_whole_with_the_same_outputs(
    few_shot: tuple[Path, Path], tmp_path: Path, runtime_options: list[dict[str, Any]]
) -> None:
    reused = run_file(few_shot, tmp_path)
    whole = run_file(few_shot, tmp_path, "--no-prefix-reuse")
    assert [m["text"] for m in whole] == [m["text"] for m in reused]
    # The items run concurrently: together they share the prefix's states; an item that ran first alone left
    # its prompt in the cache for the others.
    assert sum(m["cached_prompt_tokens"] >= MIN_SHARED_TOKENS for m in reused) >= len(reused) - 1
    assert all(m["cached_prompt_tokens"] == 0 for m in whole)
    assert [options["reuse_prefixes"] for options in runtime_options] == [True, False]
    assert runtime_options[0]["prefix_cache_bytes"] == DEFAULT_PREFIX_CACHE_BYTES


def test_prefix_cache_mb_bounds_the_cache(
    few_shot: tuple[Path, Path], tmp_path: Path, runtime_options: list[dict[str, Any]]
) -> None:
    run_file(few_shot, tmp_path, "--prefix-cache-mb", "1.5")
    assert runtime_options[0]["prefix_cache_bytes"] == int(1.5 * 2**20)


def test_eval_takes_the_flags(
    few_shot: tuple[Path, Path], tmp_path: Path, runtime_options: list[dict[str, Any]]
) -> None:
    pipeline, _ = few_shot
    data = tmp_path / "labelled.jsonl"
    data.write_text(json.dumps({"input": "who sat?", "answer": "the cat"}))
    command = ["eval", str(pipeline), "--data", str(data), "--metric", "contains", "--output"]
    command += [str(tmp_path / "eval.jsonl"), "--store", str(tmp_path / "runs.sqlite"), "--no-prefix-reuse"]
    assert main(command) == 0
    assert runtime_options[0]["reuse_prefixes"] is False


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--prefix-cache-mb", "-1"], "--prefix-cache-mb must be a number of MiB, 0 or more (got -1)"),
        (["--prefix-cache-mb", "nan"], "--prefix-cache-mb must be a number of MiB, 0 or more (got nan)"),
        (["--prefix-cache-mb", "8", "--no-prefix-reuse"], "which --no-prefix-reuse turns off"),
    ],
)
@pytest.mark.parametrize("command", ["run", "eval", "ensemble check"])
def test_bad_values_exit_2_before_anything_runs(
    few_shot: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    flags: list[str],
    message: str,
) -> None:
    pipeline, inputs = few_shot
    output = tmp_path / "out.jsonl"
    arguments = {
        "run": ["run", str(pipeline), "--input-file", str(inputs), "--output", str(output)],
        "eval": ["eval", str(pipeline), "--data", str(inputs), "--metric", "exact", "--output", str(output)],
        "ensemble check": [
            "ensemble",
            "check",
            "--members",
            "a,b",
            "--data",
            str(inputs),
            "--metric",
            "exact",
        ],
    }[command]
    if command != "ensemble check":
        arguments += ["--store", str(tmp_path / "runs.sqlite")]
    assert main([*arguments, *flags]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not output.exists() and not (tmp_path / "runs.sqlite").exists()


def test_a_size_that_is_not_a_number_exits_2(
    few_shot: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    pipeline, _ = few_shot
    with pytest.raises(SystemExit) as exited:
        main(["run", str(pipeline), "hello", "--prefix-cache-mb", "lots"])
    assert exited.value.code == 2
    assert "argument --prefix-cache-mb: invalid float value: 'lots'" in capsys.readouterr().err
