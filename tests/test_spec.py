"""The spec layer: loading pipeline YAML, and reporting every problem with its file and line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fslm.errors import FslmError
from fslm.spec import (
    END,
    EdgeSpec,
    PipelineSpec,
    Problem,
    SpecError,
    downstream,
    load_spec,
    pipeline_json_schema,
    stage_file_json_schema,
    upstream,
)

MODELS = """\
models:
  smol:
    source: smollm2-135m-instruct
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def pipeline(tmp_path: Path, body: str, *, models: str = MODELS) -> Path:
    """A pipeline file under tmp_path/pipelines; `body` is dedented YAML that follows the models block."""
    return write(tmp_path / "pipelines" / "p.yaml", models + textwrap.dedent(body))


def problems(path: Path) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def only_problem(path: Path) -> Problem:
    found = problems(path)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of `path` containing `needle`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# --- valid files -------------------------------------------------------------------------------------


def test_sequential_file_gets_the_chain_written_out_with_an_explicit_end(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        description: Restate, then answer.
        stages:
          restate:
            model: smol
            system: You are concise.
            prompt: "Restate: {{ input }}"
            generation: {max_new_tokens: 64, temperature: 0.7, top_p: 0.9, stop: ["\\n\\n"], seed: 0}
          answer:
            model: smol
            chat_template: false
            prompt: "Q: {{ restate }}\\nA:"
        """,
    )
    spec = load_spec(path)
    assert isinstance(spec, PipelineSpec)
    assert spec.name == "p"
    assert spec.path == path.resolve()
    assert list(spec.stages) == ["restate", "answer"]
    assert spec.entry == "restate"
    assert spec.output is None
    assert [(edge.sources, edge.targets) for edge in spec.edges] == [
        (["restate"], ["answer"]),
        (["answer"], [END]),
    ]
    restate = spec.stages["restate"]
    assert restate.generation.max_new_tokens == 64
    assert restate.generation.stop == ["\n\n"]
    assert spec.stages["answer"].generation.max_new_tokens == 128
    assert spec.stages["answer"].chat_template is False
    assert len(spec.source_hash) == 64
    assert upstream(spec, "answer") == {"restate"}
    assert downstream(spec, "restate") == ["answer"]


def test_branching_with_label_and_regex_cases(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          triage:
            model: smol
            prompt: "Classify: {{ input }}"
          solver: {model: smol, prompt: "Solve {{ input }} ({{ triage }})"}
          clarify: {model: smol, prompt: "Ask about {{ input }}"}
          answer: {model: smol, prompt: "Answer {{ input }}"}
        edges:
          - from: triage
            when:
              - {label: math, to: solver}
              - {regex: "\\\\?\\\\s*$", to: clarify}
            otherwise: answer
        output: answer
        """,
    )
    spec = load_spec(path)
    (edge, *end_edges) = spec.edges
    assert edge.is_conditional
    assert edge.route("Math: it needs sums") == "solver"
    assert edge.route("which one?  ") == "clarify"
    assert edge.route("history") == "answer"
    assert edge.next_stages() == ["solver", "clarify", "answer"]
    assert [e.sources[0] for e in end_edges] == ["solver", "clarify", "answer"]
    assert all(e.targets == [END] for e in end_edges)
    assert spec.output == "answer"


def test_fan_out_and_fan_in(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          split: {model: smol, prompt: "{{ input }}"}
          left: {model: smol, prompt: "{{ split }}"}
          right: {model: smol, prompt: "{{ split }}"}
          join: {model: smol, prompt: "{{ left }} {{ right }} {{ split }}"}
        edges:
          - {from: split, to: [left, right]}
          - {from: [left, right], to: join}
        """,
    )
    spec = load_spec(path)
    assert spec.edges[1].sources == ["left", "right"]
    assert upstream(spec, "join") == {"split", "left", "right"}
    assert upstream(spec, "left") == {"split"}
    assert downstream(spec, "split") == ["left", "right", "join"]


def test_loop_with_an_exit_is_valid(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          draft: {model: smol, prompt: "{{ input }}"}
          check: {model: smol, prompt: "{{ draft }}"}
        edges:
          - {from: draft, to: check}
          - from: check
            when: [{label: retry, to: draft}]
            otherwise: END
        """,
    )
    spec = load_spec(path)
    assert upstream(spec, "draft") == set()
    assert upstream(spec, "check") == {"draft"}
    assert downstream(spec, "check") == ["draft"]


def test_use_of_a_stage_file_with_inline_overrides(tmp_path: Path) -> None:
    write(
        tmp_path / "stages" / "plan.yaml",
        """\
        model: smol
        adapter: ../adapters/plan
        prompt: |
          Plan: {{ input }}
        generation:
          max_new_tokens: 64
          temperature: 0.5
        """,
    )
    write(tmp_path / "adapters" / "plan" / "adapter_config.json", "{}")
    path = pipeline(
        tmp_path,
        """\
        stages:
          plan:
            use: plan
            system: Be brief.
            generation: {max_new_tokens: 96}
        """,
    )
    stage = load_spec(path).stages["plan"]
    assert stage.prompt == "Plan: {{ input }}\n"
    assert stage.system == "Be brief."
    assert stage.generation.max_new_tokens == 96
    assert stage.generation.temperature == 0.5
    # relative to the stage file that names it, not to the pipeline
    assert stage.adapter == (tmp_path / "adapters" / "plan").resolve()


def test_source_hash_covers_used_stage_files(tmp_path: Path) -> None:
    stage_file = write(tmp_path / "stages" / "plan.yaml", "model: smol\nprompt: 'a {{ input }}'\n")
    path = pipeline(tmp_path, "stages:\n  plan: {use: plan}\n")
    before = load_spec(path).source_hash
    stage_file.write_text("model: smol\nprompt: 'b {{ input }}'\n")
    assert load_spec(path).source_hash != before


def test_local_model_directory_is_stored_as_an_absolute_path(tmp_path: Path) -> None:
    write(tmp_path / "pipelines" / "model" / "config.json", "{}")
    path = pipeline(
        tmp_path,
        "stages:\n  a: {model: local, prompt: '{{ input }}'}\n",
        models="models:\n  local: {source: ./model, dtype: float32}\n",
    )
    model = load_spec(path).models["local"]
    assert model.source == str((tmp_path / "pipelines" / "model").resolve())
    assert model.dtype == "float32"


def test_hub_id_with_revision_is_accepted_without_network(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        "stages:\n  a: {model: hub, prompt: '{{ input }}'}\n",
        models="models:\n  hub: {source: HuggingFaceTB/SmolLM2-360M-Instruct, revision: main}\n",
    )
    assert load_spec(path).models["hub"].revision == "main"


def test_upstream_after_a_branch_merges_is_the_intersection(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          triage: {model: smol, prompt: "{{ input }}"}
          short: {model: smol, prompt: "{{ triage }}"}
          long: {model: smol, prompt: "{{ triage }}"}
          polish: {model: smol, prompt: "{{ input }} {{ triage }}"}
        edges:
          - from: triage
            when: [{label: short, to: short}]
            otherwise: long
          - {from: short, to: polish}
          - {from: long, to: polish}
        """,
    )
    spec = load_spec(path)
    assert upstream(spec, "polish") == {"triage"}
    assert upstream(spec, "short") == {"triage"}
    assert downstream(spec, "triage") == ["short", "long", "polish"]
    with pytest.raises(KeyError):
        upstream(spec, "nope")


def test_spec_models_accept_plain_construction() -> None:
    edge = EdgeSpec.model_validate({"from": "a", "to": ["b", "c"]})
    assert edge.sources == ["a"] and edge.targets == ["b", "c"]
    assert EdgeSpec(sources=["a"], targets=["b"]).model_dump(by_alias=True)["from"] == ["a"]


# --- one test per kind of problem ---------------------------------------------------------------------


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "stages:\n  a:\n    model: [smol\n    prompt: x\n")
    problem = only_problem(path)
    assert problem.message.startswith("YAML syntax error")
    assert problem.file == path.resolve()
    assert problem.line in (3, 4, 5)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path / "p.yaml", "- a\n- b\n"))
    assert "top level must be a mapping" in problem.message
    assert problem.line == 1


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in only_problem(write(tmp_path / "p.yaml", "# nothing\n")).message


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec("/nonexistent/p.yaml")


def test_duplicate_keys(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a: {model: smol, prompt: "{{ input }}"}
          a: {model: smol, prompt: "again"}
        """,
    )
    problem = only_problem(path)
    assert problem.message == f"duplicate key 'a' (first given on line {line_of(path, 'a: {')})"
    assert problem.line == line_of(path, "again")


def test_unknown_key_suggests_the_closest_and_lists_valid_keys(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          plan:
            model: smol
            prompt: "{{ input }}"
            generation:
              max_new_token: 64
        """,
    )
    problem = only_problem(path)
    assert problem.message == (
        "unknown key 'max_new_token' in stage 'plan' generation; did you mean 'max_new_tokens'? "
        "(valid keys: max_new_tokens, seed, stop, temperature, top_p)"
    )
    assert problem.line == line_of(path, "max_new_token:")


def test_unknown_keys_at_top_level_in_models_and_edges(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stage:
          a: {model: smol, prompt: x}
        """,
        models="models:\n  smol: {source: smollm2-135m-instruct, dtyp: auto}\n",
    )
    messages = [p.message for p in problems(path)]
    assert any("unknown key 'dtyp' in model 'smol'; did you mean 'dtype'?" in m for m in messages)
    assert any("unknown key 'stage' in the top level; did you mean 'stages'?" in m for m in messages)
    assert any("missing required key 'stages'" in m for m in messages)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "max_new_tokens: 0",
            "generation.max_new_tokens: Input should be greater than or equal to 1 (got 0)",
        ),
        ("max_new_tokens: 5000", "generation.max_new_tokens: Input should be less than or equal to 4096"),
        ("max_new_tokens: '64'", "generation.max_new_tokens: Input should be a valid integer"),
        ("max_new_tokens: true", "generation.max_new_tokens: Input should be a valid integer"),
        ("temperature: 2.5", "generation.temperature: Input should be less than or equal to 2"),
        ("temperature: -1", "generation.temperature: Input should be greater than or equal to 0"),
        ("top_p: 0", "generation.top_p: Input should be greater than 0"),
        ("top_p: 1.5", "generation.top_p: Input should be less than or equal to 1"),
        ("seed: -3", "generation.seed: Input should be greater than or equal to 0"),
        ("stop: ['']", "generation.stop[0]: String should have at least 1 character"),
        ("stop: 'x'", "generation.stop: Input should be a valid list"),
    ],
)
def test_out_of_range_and_wrong_typed_generation_values(tmp_path: Path, setting: str, expected: str) -> None:
    path = pipeline(
        tmp_path,
        f"""\
        stages:
          a:
            model: smol
            prompt: "{{{{ input }}}}"
            generation:
              {setting}
        """,
    )
    problem = only_problem(path)
    assert problem.message.startswith(f"stage 'a' {expected}")
    assert problem.line == line_of(path, setting)


def test_wrong_typed_stage_value(tmp_path: Path) -> None:
    path = pipeline(tmp_path, "stages:\n  a:\n    model: smol\n    prompt: 12\n")
    problem = only_problem(path)
    assert problem.message == "stage 'a' prompt: Input should be a valid string (got 12)"
    assert problem.line == line_of(path, "prompt: 12")


def test_dtype_lists_its_choices(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        "stages:\n  a: {model: smol, prompt: x}\n",
        models="models:\n  smol:\n    source: smollm2-135m-instruct\n    dtype: bf16\n",
    )
    problem = only_problem(path)
    assert problem.message == "model 'smol' dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"
    assert problem.line == 4


def test_missing_required_stage_key(tmp_path: Path) -> None:
    path = pipeline(tmp_path, "stages:\n  a:\n    model: smol\n")
    problem = only_problem(path)
    assert problem.message == "stage 'a' is missing required key 'prompt'"
    assert problem.line == line_of(path, "a:")


def test_invalid_regex(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a: {model: smol, prompt: x}
          b: {model: smol, prompt: y}
        edges:
          - from: a
            when:
              - {regex: "(unclosed", to: b}
        """,
    )
    problem = only_problem(path)
    assert problem.message.startswith("edge 1 case 1 regex: invalid regular expression '(unclosed'")
    assert problem.line == line_of(path, "regex:")


def test_label_that_can_never_match(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a: {model: smol, prompt: x}
          b: {model: smol, prompt: y}
        edges:
          - from: a
            when:
              - {label: Math, to: b}
        """,
    )
    problem = only_problem(path)
    assert "label 'Math' can never match" in problem.message and "write 'math'" in problem.message
    assert problem.line == line_of(path, "label:")


def test_malformed_edges(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a: {model: smol, prompt: x}
          b: {model: smol, prompt: y}
        edges:
          - {from: a, to: b, when: [{label: x, to: b}]}
          - {from: a, otherwise: b, to: b}
          - from: a
            when: [{label: x, regex: y, to: b}]
        """,
    )
    assert [(p.line, p.message) for p in problems(path)] == [
        (
            line_of(path, "to: b, when"),
            "edge 1: an edge has either 'to' or 'when' (with 'otherwise'), not both",
        ),
        (
            line_of(path, "otherwise: b"),
            "edge 2: 'otherwise' only applies to a conditional edge with 'when' cases",
        ),
        (
            line_of(path, "regex: y"),
            "edge 3 case 1: a case needs exactly one of 'label', 'regex' or 'equals', and 'to'",
        ),
    ]


def test_unknown_model_handle(tmp_path: Path) -> None:
    path = pipeline(tmp_path, "stages:\n  a:\n    model: smoll\n    prompt: x\n")
    problem = only_problem(path)
    assert (
        problem.message == "stage 'a' uses unknown model 'smoll'; did you mean 'smol'? (defined models: smol)"
    )
    assert problem.line == line_of(path, "model: smoll")


def test_model_source_that_is_nothing_known_lists_builtin_aliases(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        "stages:\n  a: {model: smol, prompt: x}\n",
        models="models:\n  smol:\n    source: smollm2-135m-instrct\n",
    )
    problem = only_problem(path)
    assert problem.message.startswith("model 'smol': source 'smollm2-135m-instrct' is not a builtin alias")
    assert "did you mean 'smollm2-135m-instruct'?" in problem.message
    assert "builtin aliases: gemma3-270m, smollm2-135m-instruct" in problem.message
    assert problem.line == 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("./missing-model", "local model path './missing-model' does not exist"),
        ("weights.gguf", "local model path 'weights.gguf' does not exist"),
        ("./emptydir", "has no config.json"),
    ],
)
def test_local_model_path_problems(tmp_path: Path, source: str, expected: str) -> None:
    (tmp_path / "pipelines" / "emptydir").mkdir(parents=True)
    path = pipeline(
        tmp_path, "stages:\n  a: {model: m, prompt: x}\n", models=f"models:\n  m:\n    source: {source}\n"
    )
    problem = only_problem(path)
    assert problem.message.startswith("model 'm': ") and expected in problem.message
    assert problem.line == 3


def test_revision_only_for_hub_ids(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        "stages:\n  a: {model: smol, prompt: x}\n",
        models="models:\n  smol:\n    source: smollm2-135m-instruct\n    revision: main\n",
    )
    problem = only_problem(path)
    assert problem.message == "model 'smol': 'revision' only applies to hub ids 'org/name'"
    assert problem.line == 4


def test_use_of_a_missing_stage_file_lists_those_available(tmp_path: Path) -> None:
    write(tmp_path / "stages" / "plan.yaml", "model: smol\nprompt: x\n")
    write(tmp_path / "pipelines" / "stages" / "check.yaml", "model: smol\nprompt: y\n")
    path = pipeline(tmp_path, "stages:\n  a:\n    use: plann\n")
    problem = only_problem(path)
    assert problem.message == (
        "stage 'a' uses stage file 'plann', which was not found in stages/ or ../stages/ next to the "
        "pipeline; did you mean 'plan'? (stage files: check, plan)"
    )
    assert problem.line == line_of(path, "use: plann")


def test_problems_inside_a_used_stage_file_point_at_that_file(tmp_path: Path) -> None:
    stage_file = write(
        tmp_path / "stages" / "plan.yaml",
        """\
        model: smol
        prompt: |
          Plan: {{ input }}
          {{ nothing }}
        generation:
          temprature: 0.5
          top_p: 3
        """,
    )
    path = pipeline(tmp_path, "stages:\n  plan:\n    use: plan\n")
    found = {(p.file, p.line): p.message for p in problems(path)}
    stage_file = stage_file.resolve()
    assert found[(stage_file, 6)].startswith("unknown key 'temprature' in stage file")
    assert "did you mean 'temperature'?" in found[(stage_file, 6)]
    assert (
        found[(stage_file, 7)]
        == "stage 'plan' generation.top_p: Input should be less than or equal to 1 (got 3)"
    )
    assert (
        found[(stage_file, 4)]
        == "stage 'plan' prompt uses undefined variable 'nothing' (available here: input); a field of a "
        "structured input is read only when the pipeline declares it in `inputs:`"
    )
    assert len(found) == 3


def test_missing_adapter_directory(tmp_path: Path) -> None:
    path = pipeline(tmp_path, "stages:\n  a:\n    model: smol\n    adapter: ../adapters/a\n    prompt: x\n")
    problem = only_problem(path)
    assert problem.message == (
        "stage 'a': adapter directory '../adapters/a' does not exist "
        f"({(tmp_path / 'adapters' / 'a').resolve()})"
    )
    assert problem.line == line_of(path, "adapter:")


def test_adapter_directory_without_adapter_config(tmp_path: Path) -> None:
    (tmp_path / "adapters" / "a").mkdir(parents=True)
    path = pipeline(tmp_path, "stages:\n  a:\n    model: smol\n    adapter: ../adapters/a\n    prompt: x\n")
    problem = only_problem(path)
    assert "has no adapter_config.json" in problem.message
    assert problem.line == line_of(path, "adapter:")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("my-stage", "stage name 'my-stage' is not a valid identifier"),
        ("2nd", "stage name '2nd' is not a valid identifier"),
        ("class", "stage name 'class' is not a valid identifier"),
        ("input", "stage name 'input' is reserved"),
        ("END", "stage name 'END' is reserved"),
    ],
)
def test_bad_stage_names(tmp_path: Path, name: str, expected: str) -> None:
    path = pipeline(tmp_path, f"stages:\n  {name}:\n    model: smol\n    prompt: x\n")
    problem = only_problem(path)
    assert problem.message.startswith(expected)
    assert problem.line == 5


def test_unknown_stage_names_in_wiring(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          triage: {model: smol, prompt: x}
          solver: {model: smol, prompt: y}
        edges:
          - {from: [triage, trage], to: solver}
          - {from: solver, to: [ENDD]}
          - from: triage
            when: [{label: math, to: solvr}]
            otherwise: answer
        entry: triag
        output: solve
        """,
    )
    found = {p.line: p.message for p in problems(path)}
    stages = "(stages: solver, triage)"
    with_end = "(stages: END, solver, triage)"
    assert (
        found[line_of(path, "trage")]
        == f"edge 1 'from' names unknown stage 'trage'; did you mean 'triage'? {stages}"
    )
    assert (
        found[line_of(path, "ENDD")]
        == f"edge 2 'to' names unknown stage 'ENDD'; did you mean 'END'? {with_end}"
    )
    assert (
        found[line_of(path, "solvr")]
        == f"edge 3 case 1 names unknown stage 'solvr'; did you mean 'solver'? {with_end}"
    )
    assert found[line_of(path, "otherwise")] == f"edge 3 'otherwise' names unknown stage 'answer' {with_end}"
    assert (
        found[line_of(path, "entry:")]
        == f"entry names unknown stage 'triag'; did you mean 'triage'? {stages}"
    )
    assert (
        found[line_of(path, "output:")]
        == f"output names unknown stage 'solve'; did you mean 'solver'? {stages}"
    )
    assert len(found) == 6


def test_entry_without_edges(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path, "stages:\n  a: {model: smol, prompt: x}\n  b: {model: smol, prompt: y}\nentry: b\n"
    )
    problem = only_problem(path)
    assert problem.message.startswith("entry 'b' needs 'edges'")
    assert problem.line == line_of(path, "entry:")


def test_template_syntax_error_points_at_the_line_inside_the_block(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a:
            model: smol
            prompt: |
              First line {{ input }}
              Second line {% if input %}
              never closed
        """,
    )
    problem = only_problem(path)
    assert problem.message.startswith("stage 'a' prompt: template syntax error: Unexpected end of template")
    assert problem.line == line_of(path, "Second line")  # where the unclosed block opens


def test_template_with_unknown_filter(tmp_path: Path) -> None:
    path = pipeline(tmp_path, "stages:\n  a:\n    model: smol\n    prompt: '{{ input | shout }}'\n")
    problem = only_problem(path)
    assert problem.message == "stage 'a' prompt: template syntax error: No filter named 'shout'."
    assert problem.line == line_of(path, "prompt:")


def test_template_variable_not_upstream_on_every_path(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          triage: {model: smol, prompt: "{{ input }}"}
          short: {model: smol, prompt: "{{ triage }}"}
          long: {model: smol, prompt: "{{ triage }}"}
          polish:
            model: smol
            prompt: |
              Question: {{ input }}
              Draft: {{ short }}
              Notes: {{ notes }}
        edges:
          - from: triage
            when: [{label: short, to: short}]
            otherwise: long
          - {from: short, to: polish}
          - {from: long, to: polish}
        """,
    )
    found = problems(path)
    assert [(p.line, p.message) for p in found] == [
        (
            line_of(path, "Draft:"),
            (
                "stage 'polish' prompt uses 'short', but stage 'short' is not sure to have run before "
                "'polish' on every path (available here: input, triage)"
            ),
        ),
        (
            line_of(path, "Notes:"),
            (
                "stage 'polish' prompt uses undefined variable 'notes' (available here: input, triage); a "
                "field of a structured input is read only when the pipeline declares it in `inputs:`"
            ),
        ),
    ]


def test_template_using_a_later_stage_in_a_sequence(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        "stages:\n  a: {model: smol, prompt: '{{ b }}'}\n  b: {model: smol, prompt: '{{ a }}'}\n",
    )
    problem = only_problem(path)
    assert "stage 'a' prompt uses 'b', but stage 'b' is not sure to have run before 'a'" in problem.message
    assert problem.line == line_of(path, "{{ b }}")


def test_cycles_with_no_exit(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a: {model: smol, prompt: x}
          b: {model: smol, prompt: x}
          c: {model: smol, prompt: x}
          d: {model: smol, prompt: x}
        edges:
          - {from: a, to: [b, d]}
          - {from: b, to: c}
          - {from: c, to: b}
          - {from: d, to: d}
        """,
    )
    found = [(p.line, p.message) for p in problems(path)]
    assert found == [
        (
            line_of(path, "from: b"),
            (
                "stages 'b', 'c' form a loop with no way out: no edge, case or 'otherwise' leads from them "
                "to another stage or END"
            ),
        ),
        (
            line_of(path, "from: d"),
            (
                "stage 'd' loops back to itself with no way out: no edge, case or 'otherwise' leads from it "
                "to another stage or END"
            ),
        ),
    ]


def test_unreachable_stage(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          a: {model: smol, prompt: x}
          b: {model: smol, prompt: x}
          orphan: {model: smol, prompt: x}
        edges:
          - {from: a, to: b}
        """,
    )
    problem = only_problem(path)
    assert problem.message == "stage 'orphan' can never run: no path of edges leads to it from the entry 'a'"
    assert problem.line == line_of(path, "orphan:")


def test_many_problems_are_reported_together_in_file_order(tmp_path: Path) -> None:
    path = pipeline(
        tmp_path,
        """\
        stages:
          restate:
            model: smoll
            prompt: "{{ input }"
            generation: {top_p: 2}
          plan:
            use: nowhere
          answer:
            model: smol
            prompt: "{{ planx }}"
            generation: {max_new_token: 3}
        edges:
          - {from: restate, to: plan}
          - {from: plan, to: answr}
        output: answer
        """,
        models="models:\n  smol:\n    source: smollm2-135m-instruct\n    dtype: half\n",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    error = caught.value
    lines = [p.line for p in error.problems]
    assert lines == sorted(lines)
    assert len(error.problems) == 8, str(error)
    report = str(error).splitlines()
    assert len(report) == 8
    shown = path.resolve()
    try:
        shown = shown.relative_to(Path.cwd())
    except ValueError:
        pass
    assert (
        report[0]
        == f"{shown}:4: model 'smol' dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"
    )
    for needle in (
        "unknown model 'smoll'",
        "template syntax error",
        "top_p",
        "nowhere",
        "answr",
        "max_new_token",
    ):
        assert needle in str(error)
    # its only way in names a typo; the prompt of a stage that can never run is not checked further
    assert "stage 'answer' can never run" in str(error)
    assert "planx" not in str(error)
    assert isinstance(error, FslmError)


# --- schema and layering ------------------------------------------------------------------------------


def _properties(schema: dict, definitions: dict) -> list[tuple[str, dict]]:
    found = list(schema.get("properties", {}).items())
    for key, value in list(found):
        for reference in _references(value):
            found += [(f"{key}.{k}", v) for k, v in _properties(definitions[reference], definitions)]
    return found


def _references(value: dict) -> list[str]:
    text = json.dumps(value)
    return [part.split('"')[0] for part in text.split('"$ref": "#/$defs/')[1:]]


def test_json_schema_describes_every_key() -> None:
    schema = pipeline_json_schema()
    definitions = schema["$defs"]
    properties = dict(_properties(schema, definitions))
    for key in (
        "stages.use",
        "stages.generation.max_new_tokens",
        "edges.from",
        "edges.when.label",
        "models.dtype",
    ):
        assert key in properties, sorted(properties)
    for key, value in properties.items():
        assert value.get("description"), f"{key} has no description"
    assert properties["stages.generation.max_new_tokens"]["default"] == 128
    assert properties["stages.generation.max_new_tokens"]["maximum"] == 4096
    assert properties["models.dtype"]["enum"] == ["auto", "float32", "bfloat16", "float16"]
    assert schema["required"] == ["stages"]
    assert "from" in definitions["EdgeSpec"]["required"]
    assert stage_file_json_schema()["properties"]["prompt"]["description"]
    json.dumps(schema)


@pytest.mark.slow
def test_spec_layer_does_not_import_torch_transformers_or_langgraph(tmp_path: Path) -> None:
    path = pipeline(tmp_path, "stages:\n  a: {model: smol, prompt: '{{ input }}'}\n")
    code = (
        "import sys; from fslm.spec import load_spec; load_spec(sys.argv[1]); "
        "print([m for m in ('torch', 'transformers', 'langgraph') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
