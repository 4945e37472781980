"""Structured run inputs: a JSON object whose declared fields (`inputs:`) prompt templates read, checked
before any model loads, and carried readably through the store, `fslm runs`, the viewer, replay and resume."""

import json
from pathlib import Path

import pytest

import fslm.pipeline
from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.eval.runner import EvalItem, evaluate
from fslm.finetune.sources import stage_examples
from fslm.pipeline import load_pipeline
from fslm.spec import SpecError, load_spec
from fslm.store import open_store
from fslm.store.inspection import run_details
from fslm.ui import make_server, serving
from fslm.ui.api import answer
from fslm.ui.browser import headless_chromium, missing_browser, open_view

GOAL = {"goal": "boil water", "choices": ["use a pot", "use a sieve"], "id": 7}
ITEMS = [
    GOAL,
    {"goal": "dry a towel", "choices": ["hang it", "fold it wet"]},
    {"goal": "open a jar", "choices": ["twist the lid", "shake it", "wait"]},
]


def structured_yaml(model: Path | str) -> str:
    return f"""models:
  m: {{source: {model}, dtype: float32}}
inputs: [goal, choices]
stages:
  pick:
    model: m
    prompt: "Goal: {{{{ goal }}}}. Options: {{{{ choices | join(' / ') }}}}."
    generation: {{max_new_tokens: 6}}
  check:
    model: m
    prompt: "Is '{{{{ pick }}}}' right for {{{{ goal }}}}?"
    generation: {{max_new_tokens: 4}}
"""


@pytest.fixture
def structured(tmp_path, tiny_model) -> Path:
    path = tmp_path / "choose.yaml"
    path.write_text(structured_yaml(tiny_model))
    return path


@pytest.fixture
def plain(tmp_path, tiny_model) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\nstages:\n"
        "  only: {model: m, prompt: 'Q: {{ input }}', generation: {max_new_tokens: 4}}\n"
    )
    return path


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def never_load(monkeypatch) -> None:
    """Fail the test if the CLI gets as far as compiling the pipeline (which opens the store and, on the
    first generation, loads the model)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline was loaded before the input was checked")

    monkeypatch.setattr(fslm.pipeline, "load_pipeline", refuse)


# ---- the spec: `inputs:` -----------------------------------------------------------------------------------


def test_declared_fields_are_template_variables_and_required_of_an_object(structured):
    spec = load_spec(structured)
    assert spec.inputs == ["goal", "choices"]
    assert spec.input_fields == ["goal", "choices"]


def test_a_template_reading_input_makes_input_a_required_field(plain, tmp_path):
    assert load_spec(plain).input_fields == ["input"]
    both = tmp_path / "both.yaml"
    both.write_text(
        plain.read_text().replace("stages:", "inputs: [topic]\nstages:").replace("Q:", "{{ topic }}:")
    )
    assert load_spec(both).input_fields == ["topic", "input"]


def test_undeclared_variable_is_still_an_error_with_did_you_mean(structured):
    structured.write_text(structured.read_text().replace("Goal: {{ goal }}", "Goal: {{ gaol }}"))
    with pytest.raises(SpecError) as raised:
        load_spec(structured)
    (problem,) = raised.value.problems
    assert "undefined variable 'gaol'; did you mean 'goal'?" in problem.message
    assert "(available here: choices, goal, input)" in problem.message


def test_a_field_used_without_declaring_it_says_where_to_declare_it(plain):
    plain.write_text(plain.read_text().replace("{{ input }}", "{{ question }}"))
    with pytest.raises(SpecError) as raised:
        load_spec(plain)
    assert "undefined variable 'question'" in str(raised.value)
    assert "declares it in `inputs:`" in str(raised.value)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("[input]", "input field 'input' needs no declaration"),
        ("[pick]", "input field 'pick' has the name of a stage"),
        ("[goal, goal]", "input field 'goal' is listed twice"),
        ("[2nd]", "input field '2nd' is not a valid identifier"),
        ("[class]", "input field 'class' is not a valid identifier"),
        ("[END]", "input field 'END' is reserved"),
        ("goal", "Input should be a valid list"),
        ("[[goal]]", "Input should be a valid string"),
    ],
)
def test_bad_declarations_are_reported_at_their_line(tmp_path, names, message):
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"models:\n  m: {{source: {tmp_path}}}\ninputs: {names}\nstages:\n  pick: {{model: m, prompt: hi}}\n"
    )
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    found = [problem for problem in raised.value.problems if message in problem.message]
    assert found and found[0].line == 3, raised.value.problems


# ---- checking an input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("boil water", "reads the fields goal, choices of a structured input"),
        ({"goal": "x"}, "the input has no field 'choices', which pipeline 'choose' reads (declared in its"),
        ({"choices": []}, "no field 'goal'"),
        (["boil water"], "not list"),
        ({"goal": "x", "choices": {1, 2}}, "must be JSON data"),
    ],
)
def test_an_input_that_cannot_feed_the_pipeline_is_an_error_before_any_model_loads(
    structured, value, message
):
    pipeline = load_pipeline(structured, store=":memory:")
    with pytest.raises(FslmError) as raised:
        pipeline.invoke(value)
    assert message in str(raised.value)
    with pytest.raises(FslmError, match="item 2: "):
        pipeline.batch([GOAL, value])
    assert pipeline.runtime.stats.base_loads == 0
    assert pipeline.store.index.list() == []


def test_an_object_feeds_a_plain_pipeline_only_through_its_input_field(plain):
    pipeline = load_pipeline(plain, store=":memory:")
    with pytest.raises(FslmError, match="no field 'input'.*declares no `inputs:` fields"):
        pipeline.invoke({"question": "why?"})
    result = pipeline.invoke({"input": "why?", "id": 3})
    assert result.messages[0]["prompt"] == "Q: why?"
    assert result.input == {"input": "why?", "id": 3}


# ---- running -----------------------------------------------------------------------------------------------


def test_invoke_renders_the_fields_and_records_the_object(structured):
    pipeline = load_pipeline(structured, store=":memory:")
    result = pipeline.invoke(GOAL)
    pick, check = result.messages
    assert pick["prompt"] == "Goal: boil water. Options: use a pot / use a sieve."
    assert check["prompt"] == f"Is '{pick['text']}' right for boil water?"
    assert result.input == GOAL
    assert pipeline.result(result.run_id).input == GOAL
    assert json.loads(pipeline.store.index.get(result.run_id).input) == GOAL
    streamed = list(pipeline.stream(ITEMS[1]))
    assert streamed[0]["prompt"] == "Goal: dry a towel. Options: hang it / fold it wet."


def test_batched_objects_equal_one_at_a_time(structured):
    pipeline = load_pipeline(structured, store=":memory:")
    alone = [pipeline.invoke(item) for item in ITEMS]
    together = pipeline.batch(ITEMS)
    assert [r.input for r in together] == ITEMS
    assert [[m["text"] for m in r.messages] for r in together] == [
        [m["text"] for m in r.messages] for r in alone
    ]
    assert [[m["prompt"] for m in r.messages] for r in together] == [
        [m["prompt"] for m in r.messages] for r in alone
    ]


def test_eval_passes_objects_through(structured):
    pipeline = load_pipeline(structured, store=":memory:")
    report = evaluate(pipeline, [EvalItem(item, "yes") for item in ITEMS], "exact")
    assert [row.input for row in report.items] == ITEMS
    assert [r.input for r in report.items] == [
        run_details(pipeline.store, r.run_id).input for r in report.items
    ]


# ---- the command line --------------------------------------------------------------------------------------


def test_input_file_objects_pass_whole(structured, tmp_path):
    inputs, output, store = tmp_path / "items.jsonl", tmp_path / "out.jsonl", tmp_path / "runs.sqlite"
    inputs.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    command = [
        "run",
        str(structured),
        "--input-file",
        str(inputs),
        "--output",
        str(output),
        "--store",
        str(store),
    ]
    assert main(command) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["input"] for row in rows] == ITEMS
    assert rows[2]["messages"][0]["prompt"] == "Goal: open a jar. Options: twist the lid / shake it / wait."


def test_input_file_line_missing_a_field_is_exit_2_naming_line_and_field(
    structured, tmp_path, capsys, monkeypatch
):
    never_load(monkeypatch)
    inputs = tmp_path / "items.jsonl"
    inputs.write_text(json.dumps(GOAL) + "\n\n" + json.dumps({"goal": "x", "choice": ["a"]}) + "\n")
    output = tmp_path / "out.jsonl"
    command = ["run", str(structured), "--input-file", str(inputs), "--output", str(output)]
    assert main([*command, "--store", str(tmp_path / "runs.sqlite")]) == 2
    err = error_of(capsys)
    assert f"{inputs}:3: the input has no field 'choices'" in err
    assert "the input's fields: goal, choice" in err
    assert not output.exists() and not (tmp_path / "runs.sqlite").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('"boil water"', ":1: pipeline 'choose' reads the fields goal, choices"),
        ("[1, 2]", ":1: a run's input is text or a JSON object"),
    ],
)
def test_input_file_line_that_is_no_object_is_exit_2(
    structured, tmp_path, capsys, monkeypatch, line, message
):
    never_load(monkeypatch)
    inputs = tmp_path / "items.jsonl"
    inputs.write_text(line + "\n")
    assert (
        main(["run", str(structured), "--input-file", str(inputs), "--output", str(tmp_path / "o.jsonl")])
        == 2
    )
    assert message in error_of(capsys)


def test_field_does_not_apply_to_a_pipeline_that_declares_inputs(structured, tmp_path, capsys, monkeypatch):
    never_load(monkeypatch)
    inputs = tmp_path / "items.jsonl"
    inputs.write_text(json.dumps(GOAL) + "\n")
    command = ["run", str(structured), "--input-file", str(inputs), "--output", str(tmp_path / "o.jsonl")]
    assert main([*command, "--field", "goal"]) == 2
    assert "each line's object is passed whole. Leave out --field" in error_of(capsys)


def test_input_json_runs_one_object(structured, tmp_path, capsys):
    store = tmp_path / "runs.sqlite"
    assert (
        main(["run", str(structured), "--input-json", json.dumps(GOAL), "--json", "--store", str(store)]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["input"] == GOAL
    assert result["messages"][0]["prompt"].startswith("Goal: boil water.")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["boil water"], """not text. Give it with --input-json '{"goal": "…", "choices": "…"}'"""),
        (["--input-json", "{goal: 1}"], "--input-json is not valid JSON"),
        (["--input-json", "[1]"], "--input-json takes a JSON object (or a JSON string), not list"),
        (["--input-json", '{"goal": "x"}'], "the input has no field 'choices'"),
        (["x", "--input-json", "{}"], "give one of: the input text, --input-json JSON, or --input-file FILE"),
        (["x", "--field", "goal"], "--field picks the text field of each line of --input-file"),
    ],
)
def test_bad_single_input_is_exit_2_before_any_model_loads(structured, capsys, monkeypatch, given, message):
    never_load(monkeypatch)
    assert main(["run", str(structured), *given]) == 2
    assert message in error_of(capsys)


def test_plain_pipeline_input_file_unchanged(plain, tmp_path):
    inputs, output = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    inputs.write_text('{"question": "why?", "input": "ignored"}\n"how?"\n')
    command = ["run", str(plain), "--input-file", str(inputs), "--output", str(output)]
    assert main([*command, "--field", "question", "--store", str(tmp_path / "runs.sqlite")]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["input"] for row in rows] == ["why?", "how?"]
    assert [row["messages"][0]["prompt"] for row in rows] == ["Q: why?", "Q: how?"]


def test_resume_key_includes_the_objects(structured, tmp_path, capsys):
    inputs, output, store = tmp_path / "items.jsonl", tmp_path / "out.jsonl", tmp_path / "runs.sqlite"
    inputs.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    command = [
        "run",
        str(structured),
        "--input-file",
        str(inputs),
        "--output",
        str(output),
        "--store",
        str(store),
    ]
    assert main(command) == 0
    first = [json.loads(line) for line in output.read_text().splitlines()]
    # The same objects, written differently (key order, spacing): the same batch, read back, not run again.
    inputs.write_text(
        "".join(json.dumps(dict(reversed(item.items())), indent=None) + "  \n" for item in ITEMS)
    )
    assert main([*command, "--resume"]) == 0
    assert [json.loads(line) for line in output.read_text().splitlines()] == first
    assert len(open_store(store).index.list()) == len(ITEMS)
    changed = [*ITEMS[:2], {**ITEMS[2], "choices": ["twist the lid", "wait"]}]
    inputs.write_text("".join(json.dumps(item) + "\n" for item in changed))
    capsys.readouterr()
    assert main([*command, "--resume"]) == 2
    assert "nothing to resume" in error_of(capsys)


# ---- reading runs back: runs show / list / export / replay, the viewer -------------------------------------


@pytest.fixture
def recorded(structured, tmp_path) -> tuple[Path, str]:
    store = tmp_path / "runs.sqlite"
    pipeline = load_pipeline(structured, store=store)
    try:
        run_id = pipeline.invoke(GOAL).run_id
    finally:
        pipeline.close()
    return store, run_id


def test_runs_show_prints_each_field(recorded, capsys):
    store, run_id = recorded
    assert main(["runs", "show", run_id, "--store", str(store)]) == 0
    shown = capsys.readouterr().out
    assert 'input:\n  goal: boil water\n  choices: ["use a pot", "use a sieve"]\n  id: 7\n' in shown
    assert main(["runs", "show", run_id, "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == GOAL


def test_runs_list_previews_the_object_as_json(recorded, capsys):
    store, _ = recorded
    assert main(["runs", "list", "--store", str(store), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert json.loads(row["input"]) == GOAL
    assert main(["runs", "list", "--store", str(store)]) == 0
    assert '{"goal": "boil' in capsys.readouterr().out


def test_runs_export_carries_the_input_as_it_was(recorded, capsys):
    store, run_id = recorded
    assert main(["runs", "export", run_id, "--stage", "pick", "--store", str(store)]) == 0
    (pair,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert pair["input"] == GOAL
    assert pair["prompt"] == "Goal: boil water. Options: use a pot / use a sieve."


def test_replay_reuses_the_structured_input(recorded, capsys):
    store, run_id = recorded
    command = ["runs", "replay", run_id, "--from", "check", "--set", "pick=use a pot"]
    assert main([*command, "--store", str(store), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["input"] == GOAL
    assert replayed["messages"][-1]["prompt"] == "Is 'use a pot' right for boil water?"
    details = run_details(open_store(store, read_only=True), replayed["run_id"])
    assert details.input == GOAL and details.record.parent_id == run_id


def test_viewer_api_returns_the_object(recorded):
    store, run_id = recorded
    status, body = answer(open_store(store, read_only=True), f"/api/runs/{run_id}", {})
    assert status == 200 and body["input"] == GOAL
    status, body = answer(open_store(store, read_only=True), "/api/diff", {"a": run_id, "b": run_id})
    assert body["a"]["input"] == GOAL


@pytest.mark.slow
def test_viewer_page_shows_each_field_as_text(recorded, tmp_path):
    if missing_browser():
        pytest.skip(f"no headless browser: {missing_browser()}")
    store, run_id = recorded
    driver = headless_chromium(tmp_path / "chromium-profile")
    try:
        with serving(make_server(open_store(store, read_only=True), port=0)) as server:
            open_view(driver, f"{server.url}#/run/{run_id}")
            shown = driver.find_element("css selector", ".input pre.text").get_attribute("textContent")
            open_view(driver, f"{server.url}#/diff/{run_id}/{run_id}")
            row = driver.find_element("css selector", "tr[data-stage='input']")
            compared = (
                row.get_attribute("class"),
                row.find_element("css selector", "pre").get_attribute("textContent"),
            )
    finally:
        driver.quit()
    expected = 'goal: boil water\nchoices: ["use a pot","use a sieve"]\nid: 7'  # JSON.stringify's spacing
    assert shown == expected
    assert compared == ("same", expected)


def test_fine_tuning_from_recorded_runs_sees_the_fields(recorded):
    store, run_id = recorded
    details = run_details(open_store(store, read_only=True), run_id)
    (example,) = stage_examples(details.input, details.messages, "check", ["pick", "goal"])
    assert example.variables == {"pick": details.outputs["pick"], "goal": "boil water"}
    assert example.target == details.outputs["check"]
