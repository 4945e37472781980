"""Graph wiring and Pipeline behaviour, with a scripted runtime so every branch is deterministic."""

import threading
from pathlib import Path

import pytest

from fslm.errors import FslmError
from fslm.pipeline import Pipeline
from fslm.runtime.types import Generation, GenerationRequest
from fslm.spec import Case, EdgeSpec, load_spec
from fslm.store import open_store


class ScriptedRuntime:
    """Answers each prompt by looking up the first script key it contains."""

    max_batch_size = 8

    def __init__(self, script: dict[str, str]):
        self.script = script
        self.requests: list[GenerationRequest] = []
        self.lock = threading.Lock()

    def submit(self, request: GenerationRequest) -> Generation:
        with self.lock:
            self.requests.append(request)
        text = next((reply for key, reply in self.script.items() if key in request.prompt), "?")
        return Generation(
            text=text,
            prompt_text=request.prompt,
            prompt_tokens=len(request.prompt.split()),
            completion_tokens=len(text.split()),
            seconds=0.0,
            finish_reason="eos",
            token_logprobs=tuple(-0.5 for _ in text.split()),
        )

    def close(self) -> None:
        pass


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


HEADER = """
models:
  m: {source: %s}
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


def pipeline(tmp_path: Path, model_dir: Path, body: str, script: dict[str, str]) -> Pipeline:
    spec = load_spec(write(tmp_path / "p.yaml", HEADER % model_dir + body))
    return Pipeline(spec, ScriptedRuntime(script), open_store(":memory:"))


def test_sequential_stages_see_upstream_text(tmp_path, model_dir):
    body = """
stages:
  first: {model: m, prompt: "A {{ input }}"}
  second: {model: m, prompt: "B {{ first }}"}
  third: {model: m, prompt: "C {{ second }} {{ input }}"}
"""
    p = pipeline(tmp_path, model_dir, body, {"A ": "one", "B ": "two", "C ": "three"})
    result = p.invoke("hello")
    assert [m["stage"] for m in result.messages] == ["first", "second", "third"]
    assert [m["prompt"] for m in result.messages] == ["A hello", "B one", "C two hello"]
    assert result.output == "three"
    assert p.result(result.run_id) == result


@pytest.mark.parametrize(
    ("reply", "taken"), [("Math, clearly.", "solve"), ("a question?", "clarify"), ("chat", "answer")]
)
def test_conditional_edge_follows_label_then_regex_then_otherwise(tmp_path, model_dir, reply, taken):
    body = """
stages:
  triage: {model: m, prompt: "T {{ input }}"}
  solve: {model: m, prompt: "S {{ input }}"}
  clarify: {model: m, prompt: "Q {{ input }}"}
  answer: {model: m, prompt: "A {{ input }}"}
edges:
  - from: triage
    when:
      - {label: math, to: solve}
      - {regex: "\\\\?$", to: clarify}
    otherwise: answer
"""
    p = pipeline(tmp_path, model_dir, body, {"T ": reply, "S ": "s", "Q ": "q", "A ": "a"})
    assert [m["stage"] for m in p.invoke("x").messages] == ["triage", taken]


def test_fan_out_then_fan_in_waits_for_both(tmp_path, model_dir):
    body = """
stages:
  split: {model: m, prompt: "S {{ input }}"}
  left: {model: m, prompt: "L {{ split }}"}
  right: {model: m, prompt: "R {{ split }}"}
  join: {model: m, prompt: "J {{ left }} {{ right }}"}
edges:
  - {from: split, to: [left, right]}
  - {from: [left, right], to: join}
"""
    p = pipeline(tmp_path, model_dir, body, {"S ": "s", "L ": "l", "R ": "r", "J ": "done"})
    result = p.invoke("x")
    stages = [m["stage"] for m in result.messages]
    assert stages[0] == "split" and stages[-1] == "join" and sorted(stages[1:3]) == ["left", "right"]
    assert result.messages[-1]["prompt"] == "J l r"


def test_loop_runs_until_its_exit(tmp_path, model_dir):
    body = """
stages:
  draft: {model: m, prompt: "D {{ input }}"}
  check: {model: m, prompt: "C {{ draft }}"}
edges:
  - {from: draft, to: check}
  - from: check
    when: [{label: again, to: draft}]
    otherwise: END
"""
    runtime = ScriptedRuntime({"D ": "d", "C ": "again"})
    spec = load_spec(write(tmp_path / "p.yaml", HEADER % model_dir + body))
    p = Pipeline(spec, runtime, open_store(":memory:"))
    with pytest.raises(FslmError, match="never took its exit"):
        p.invoke("x")
    runtime.script["C "] = "fine"
    assert [m["stage"] for m in p.invoke("x").messages] == ["draft", "check"]


def test_stream_yields_each_stage_as_it_ends(tmp_path, model_dir):
    body = """
stages:
  a: {model: m, prompt: "A {{ input }}"}
  b: {model: m, prompt: "B {{ a }}"}
"""
    p = pipeline(tmp_path, model_dir, body, {"A ": "x", "B ": "y"})
    assert [(m["stage"], m["text"]) for m in p.stream("in")] == [("a", "x"), ("b", "y")]


def test_batch_matches_invoke_and_keeps_order(tmp_path, model_dir):
    body = """
stages:
  a: {model: m, prompt: "A {{ input }}"}
"""
    p = pipeline(tmp_path, model_dir, body, {"A 1": "one", "A 2": "two", "A 3": "three"})
    seen = []
    results = p.batch(["1", "2", "3"], on_done=lambda i, r: seen.append(i))
    assert [r.output for r in results] == ["one", "two", "three"]
    assert sorted(seen) == [0, 1, 2]
    assert len({r.run_id for r in results}) == 3


def test_output_key_picks_the_final_stage(tmp_path, model_dir):
    body = """
output: a
stages:
  a: {model: m, prompt: "A {{ input }}"}
  b: {model: m, prompt: "B {{ a }}"}
"""
    assert pipeline(tmp_path, model_dir, body, {"A ": "x", "B ": "y"}).invoke("in").output == "x"


def test_run_records_pipeline_file_and_hash(tmp_path, model_dir):
    body = """
stages:
  a: {model: m, prompt: "A {{ input }}"}
"""
    p = pipeline(tmp_path, model_dir, body, {"A ": "x"})
    run = p.invoke("in")
    checkpoint = p.store.saver.get_tuple({"configurable": {"thread_id": run.run_id}})
    assert checkpoint.metadata["pipeline"] == str(p.spec.path)
    assert checkpoint.metadata["pipeline_hash"] == p.spec.source_hash
    record = p.store.index.get(run.run_id)
    assert (record.pipeline, record.pipeline_hash, record.status) == (
        str(p.spec.path),
        p.spec.source_hash,
        "done",
    )
    assert record.input == "in" and record.seconds >= 0


def test_route_label_is_first_word_without_punctuation():
    edge = EdgeSpec.model_validate(
        {"from": ["t"], "when": [Case(label="yes", to="a"), Case(regex=r"\d", to="b")], "otherwise": "c"}
    )
    assert edge.route("  Yes! it is") == "a"
    assert edge.route("yesterday") == "c"
    assert edge.route("no, 4") == "b"
