"""Pipeline files, stage files and recipes are data: a template cannot run code or exhaust the machine, the
YAML loader is bounded, and every bad file ends in exit code 2 with a message naming the place."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import pytest

from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.spec.loader import load_spec
from fslm.spec.templates import compile_template, render_template, template_environment
from fslm.spec.yaml_source import parse_yaml

MODELS = "models:\n  smol: {source: smollm2-135m-instruct}\n"
EVIL_LINE = 8
PIPELINE_WITH_PROMPT = (
    MODELS
    + """stages:
  a:
    model: smol
    prompt: |
      Question: {{ input }}
      EVIL
"""
)

ESCAPES = {
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "str-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "input-globals": "{{ input.__class__.__init__.__globals__['os'].system('id') }}",
    "cycler": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner": "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "namespace": "{% set ns = namespace(a=1) %}{{ ns.a }}",
    "huge-range": "{% for i in range(10**12) %}{{ i }}{% endfor %}",
    "include": "{% include '/etc/passwd' %}",
    "import": "{% import 'macros.j2' as m %}",
    "from-import": "{% from 'macros.j2' import m %}",
    "extends": "{% extends 'base.j2' %}",
    "macro": "{% macro m() %}x{% endmacro %}",
    "call-block": "{% call range(1) %}x{% endcall %}",
    "attr-filter": "{{ input|attr('__class__') }}",
    "item-access": "{{ input['__class__'] }}",
    "map-attribute": "{{ [input]|map(attribute='__class__')|list }}",
    "str-format": "{{ '{0.__class__}'.format(input) }}",
    "percent-format": "{{ '%s' % input }}",
    "recursive-loop": "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
    "block": "{% block a %}{{ self.a() }}{% endblock %}",
    "set-block": "{% set x %}{{ input }}{% endset %}",
    "filter-block": "{% filter upper %}{{ input }}{% endfilter %}",
}

# Escapes whose names are computed, so no static check can see them: the sandbox refuses them as it renders.
RUNTIME_ESCAPES = {
    "computed-attribute": "{{ input|attr('_' ~ '_class__') }}",
    "computed-item": "{{ input['_' ~ '_class__'] }}",
    "computed-format": "{{ input['for' ~ 'mat']('{0.__class__}') }}",
    "computed-range": "{{ range(input|length * 10**6)|list }}",
    "huge-repeat": "{{ 'x' * (input|length * 10**9) }}",
    "huge-padding": "{{ 'x'|center(input|length * 10**9) }}",
    "huge-power": "{{ 10 ** (input|length * 10**9) }}",
    "nested-loops": "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
    "doubling-replace": "{{ (input * 99999).replace('', input * 99999) }}",
    "joined-copies": "{{ range(10000)|map('string')|join(input * 99999) }}",
    "repeated-output": "{% for i in range(10000) %}{{ input * 99999 }}{% endfor %}",
    "long-joins": "{% set a = input * 99999 %}{% set b = a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a %}"
    "{% set c = b ~ b ~ b ~ b ~ b ~ b ~ b ~ b ~ b ~ b %}{{ c ~ c ~ c ~ c ~ c ~ c ~ c ~ c ~ c ~ c }}",
    "shared-lists": "{{ [[input] * 99999] * 99999 }}",
    "quadratic-sum": "{{ ([[1] * 1000] * 10000)|sum(start=[]) }}",
    "bytes-format": "{{ input.encode() % 1 }}",
}


@pytest.fixture
def no_commands(monkeypatch):
    """Fail the test if anything tries to start a process."""
    ran: list[object] = []
    for module, name in [(os, "popen"), (os, "system"), (subprocess, "Popen")]:
        monkeypatch.setattr(module, name, lambda *args, **kwargs: ran.append(args))
    yield
    assert not ran, f"a template started a process: {ran}"


def validate(path: Path, capsys) -> tuple[int, str]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("source", ESCAPES.values(), ids=ESCAPES.keys())
def test_validate_refuses_template_escapes_naming_the_line(tmp_path, capsys, source, no_commands):
    pipeline = tmp_path / "evil.yaml"
    pipeline.write_text(PIPELINE_WITH_PROMPT.replace("EVIL", source))
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{pipeline}:{EVIL_LINE}: stage 'a' prompt: " in err


@pytest.mark.parametrize("source", ESCAPES.values(), ids=ESCAPES.keys())
def test_the_environment_itself_refuses_template_escapes(source, no_commands):
    with pytest.raises(jinja2.TemplateError):
        template_environment().from_string(source).render(input="x")


@pytest.mark.parametrize("source", RUNTIME_ESCAPES.values(), ids=RUNTIME_ESCAPES.keys())
def test_rendering_refuses_what_only_shows_at_run_time(source, no_commands):
    template = compile_template(source)
    with pytest.raises(FslmError, match="refused"):
        render_template(template, {"input": "x"})


def test_ordinary_templates_still_render():
    source = (
        "{% set words = input.split() %}{% for word in words %}{{ loop.index }}. {{ word|upper }}\n"
        "{% endfor %}{{ words|join(', ') }} {{ input|length * 2 }} {{ '-' * 3 }} "
        "{{ (input ~ '!')|replace('a', 'b') }}"
        "{% if plan is defined %}{{ plan|trim|indent(2) }}{% endif %}{{ range(3)|list }} {{ 2 ** 10 }}"
    )
    rendered = render_template(compile_template(source), {"input": "a cat", "plan": " step "})
    assert rendered == "1. A\n2. CAT\na, cat 10 --- b cbt!step[0, 1, 2] 1024"


def test_a_failing_template_expression_is_a_user_error():
    with pytest.raises(FslmError, match="could not be rendered: division by zero"):
        render_template(compile_template("{{ 1 / (input|length - 1) }}"), {"input": "x"})


# --- YAML bounds ------------------------------------------------------------------------------------------


def billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]" for level in range(1, 9)]
    return "\n".join(lines) + "\nstages: {a: {model: m, prompt: '{{ input }}'}}\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (billion_laughs(), 5, "aliases here expand to more than 10,000 values"),
        ("stages: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested more than 64 levels deep"),
        ("stages: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", 1, "nested more than 64 levels deep"),
        ("stages:\n  a: &loop {b: *loop}\n", 2, "nested more than 64 levels deep (through aliases)"),
        (
            "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
            2,
            "nested more than 64 levels deep (through aliases)",
        ),
        ("stages: [" + "a, " * 300_000 + "]\n", 1, "more than 250,000 values in one file"),
        (
            MODELS + 'stages:\n  a: {model: smol, prompt: "\x00{{ input }}"}\n',
            4,
            "U+0000 (NUL) is not allowed",
        ),
        (
            MODELS + 'stages:\n  a: {model: smol, prompt: "\x1b[1m{{ input }}"}\n',
            4,
            "U+001B (ESC) is not allowed",
        ),
        (
            MODELS + 'stages:\n  a: {model: smol, prompt: "{{ input }}"}\n\x7f\n',
            5,
            "U+007F (DEL) is not allowed",
        ),
    ],
    ids=[
        "billion-laughs",
        "deep-lists",
        "deep-mappings",
        "alias-cycle",
        "deep-through-alias",
        "many-values",
        "nul",
        "esc",
        "del",
    ],
)
def test_yaml_past_the_bounds_is_a_problem_with_its_line(tmp_path, capsys, text, line, message):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text(text)
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{pipeline}:{line}: " in err
    assert message in err


def test_a_billion_laughs_file_is_small():
    assert len(billion_laughs().encode()) < 600


def test_control_characters_in_a_stage_file_name_its_line(tmp_path, capsys):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "plan.yaml").write_text('model: smol\nprompt: "\x1b]8;;evil\x1b\\"\n')
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + "stages:\n  plan: {use: plan}\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{tmp_path / 'stages' / 'plan.yaml'}:2: U+001B (ESC) is not allowed" in err


# --- files and paths -----------------------------------------------------------------------------------


def test_what_is_not_a_readable_file_is_exit_2(tmp_path, capsys):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "loop1.yaml").symlink_to(tmp_path / "loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to(tmp_path / "loop1.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait for a writer forever
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # reading it would never end
    (tmp_path / "big.yaml").write_text("# a comment\n" * 400_000)
    expected = {
        "dir.yaml": "this is a directory; expected a pipeline file",
        "loop1.yaml": "cannot read this pipeline file: Too many levels of symbolic links",
        "missing.yaml": "pipeline file not found",
        "pipe.yaml": "this is not a regular file",
        "zero.yaml": "this is not a regular file",
        "big.yaml": "this pipeline file is larger than 4 MiB",
    }
    for name, message in expected.items():
        code, err = validate(tmp_path / name, capsys)
        assert (code, message in err) == (2, True), err


def test_an_unreadable_file_is_exit_2(tmp_path, capsys, monkeypatch):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + "stages: {a: {model: smol, prompt: x}}\n")
    real_open = os.open

    def refuse(path: str | Path, *args: object, **kwargs: object) -> int:
        if Path(path) == pipeline:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)  # chmod 000 does not stop root, who may run the tests
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert "cannot read this pipeline file: Permission denied" in err


@pytest.mark.parametrize("path", ["bad\0name.yaml", "bad\ud800name.yaml"], ids=["nul", "lone-surrogate"])
def test_impossible_paths_on_the_command_line_are_exit_2(capsys, path):
    code, err = validate(Path(path), capsys)
    assert code == 2
    assert "path" in err and "name" in err


def test_a_pipeline_that_is_not_utf8_names_the_line(tmp_path, capsys):
    pipeline = tmp_path / "latin.yaml"
    pipeline.write_bytes(MODELS.encode() + b"stages:\n  a: {model: smol, prompt: 'caf\xe9'}\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{pipeline}:4: not UTF-8 text: byte 0xe9" in err


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # libyaml refuses a lone surrogate (`\ud800`) as it parses: such a name never reaches the path checks
        ('a: {use: "\\ud800"}', "invalid Unicode character"),
        ('a: {model: smol, adapter: "ad\\0apter", prompt: x}', "contains a NUL character"),
        ('a: {model: smol, adapter: "ad\\udcffapter\\ud800", prompt: x}', "invalid Unicode character"),
        ("a: {model: smol, adapter: '~nobody-has-this-name/a', prompt: x}", "cannot be expanded"),
    ],
    ids=["surrogate-use", "nul-adapter", "surrogate-adapter", "unknown-home"],
)
def test_impossible_paths_in_a_file_name_the_line(tmp_path, capsys, entry, message):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + "stages:\n  " + entry + "\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{pipeline}:4: " in err and message in err


# --- bad values that used to pass --------------------------------------------------------------------


def regex_edge(pattern: str) -> str:
    edges = f"edges:\n  - {{from: a, when: [{{regex: '{pattern}', to: END}}]}}"
    return "stages:\n  a: {model: smol, prompt: x}\n" + edges


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("stages: {}", "the pipeline has no stages"),
        (
            "stages:\n  a: {ensemble: {members: [smol, smol2], weights: [.nan, 1]}, prompt: x}",
            "finite number",
        ),
        (
            "stages:\n  a: {ensemble: {members: [smol, smol2], weights: [1, .inf]}, prompt: x}",
            "finite number",
        ),
        (
            "stages:\n  a: {model: smol, prompt: x, generation: {seed: 18446744073709551616}}",
            "less than or equal",
        ),
        ("stages:\n  a: {model: smol, prompt: x, generation: {temperature: .nan}}", "finite number"),
        (regex_edge("(?:(?:\\pL|\\pN){1000})+x{1000}"), "pattern too large"),
        (regex_edge("(?<=a)b"), "RE2 syntax: no lookaround or backreferences"),
        (regex_edge("(a)\\1"), "invalid escape sequence: \\1"),
    ],
    ids=[
        "no-stages",
        "nan-weight",
        "inf-weight",
        "seed-past-64-bits",
        "nan-temperature",
        "large-regex",
        "lookbehind",
        "backreference",
    ],
)
def test_values_that_used_to_pass_are_refused(tmp_path, capsys, stages, message):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + "  smol2: {source: smollm2-135m-instruct}\n" + stages + "\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert message in err


def test_a_regex_that_backtracks_for_ever_in_python_matches_in_linear_time(tmp_path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + regex_edge("^(a+)+$") + "\n")
    assert validate(pipeline, capsys)[0] == 0
    case = load_spec(pipeline).edges[0].when[0]
    started = time.monotonic()
    assert not case.matches("a" * 100_000 + "!")  # Python's re takes 2^100000 steps here
    assert case.matches("a" * 100_000)
    assert time.monotonic() - started < 1


@pytest.mark.slow
def test_a_refused_regex_prints_nothing_but_the_problem(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + regex_edge("(?=x)") + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "fslm.cli.main", "validate", str(pipeline)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    expected = (
        f"error: {pipeline}:6: edge 1 case 1 regex: invalid regular expression '(?=x)': invalid perl "
        "operator: (?= (regex cases use RE2 syntax: no lookaround or backreferences)"
    )
    assert result.stderr.strip().splitlines() == [expected]


def test_the_largest_64_bit_seed_is_accepted(tmp_path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        MODELS + "stages:\n  a: {model: smol, prompt: x, generation: {seed: 18446744073709551615}}\n"
    )
    assert validate(pipeline, capsys)[0] == 0


@pytest.mark.parametrize("name", ["../elsewhere", "/etc/elsewhere", "sub/plan", ".hidden", "plan/"])
def test_use_takes_a_plain_name_only(tmp_path, capsys, name):
    (tmp_path / "pipelines" / "stages" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere.yaml").write_text("model: smol\nprompt: '{{ input }}'\n")
    (tmp_path / "pipelines" / "stages" / "sub" / "plan.yaml").write_text(
        "model: smol\nprompt: '{{ input }}'\n"
    )
    pipeline = tmp_path / "pipelines" / "p.yaml"
    pipeline.write_text(MODELS + f"stages:\n  a: {{use: '{name}'}}\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{pipeline}:4: stage 'a': 'use' takes the plain name of a stage file" in err


def test_use_refuses_a_stage_file_linking_outside_the_stages_directory(tmp_path, capsys):
    (tmp_path / "stages").mkdir()
    (tmp_path / "outside.yaml").write_text("model: smol\nprompt: '{{ input }}'\n")
    (tmp_path / "stages" / "plan.yaml").symlink_to(tmp_path / "outside.yaml")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(MODELS + "stages:\n  a: {use: plan}\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert "is a link to" in err and "stage files are read from the stages directories only" in err


# --- recipes share the loader ---------------------------------------------------------------------------

RECIPE = """target: {pipeline: p.yaml, stage: a}
data: {dataset: {path: d.jsonl}}
output: out
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("train: {learning_rate: .inf}\n", "finite number"),
        ("train: {learning_rate: .nan}\n", "finite number"),
        ("lora: {alpha: .inf}\n", "finite number"),
        ("train: {seed: 18446744073709551616}\n", "less than or equal"),
        ("train: {learning_rate: 1e-4}\n\x1b\n", "U+001B (ESC) is not allowed"),
        ("x: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 64 levels deep"),
    ],
    ids=["inf-learning-rate", "nan-learning-rate", "inf-alpha", "seed-past-64-bits", "esc", "deep"],
)
def test_bad_recipes_are_exit_2(tmp_path, capsys, extra, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE + extra)
    assert main(["finetune", str(recipe)]) == 2
    assert message in capsys.readouterr().err


def test_a_recipe_that_is_not_utf8_is_exit_2(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(RECIPE.encode() + b"# caf\xe9\n")
    assert main(["finetune", str(recipe)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


# --- size -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_2000_stage_chain_validates(tmp_path, capsys):
    stages = ["  s0: {model: smol, prompt: '{{ input }}'}"]
    stages += [
        f"  s{i}: {{model: smol, prompt: '{{{{ s{i - 1} }}}} {{{{ input }}}}'}}" for i in range(1, 2000)
    ]
    pipeline = tmp_path / "long.yaml"
    pipeline.write_text(MODELS + "stages:\n" + "\n".join(stages) + "\n")
    code, _ = validate(pipeline, capsys)
    assert code == 0


@pytest.mark.slow
def test_a_pipeline_of_more_than_2000_stages_is_refused_at_its_stages_key(tmp_path, capsys):
    stages = "".join(f"  s{i}: {{model: smol, prompt: x}}\n" for i in range(2_001))
    pipeline = tmp_path / "huge.yaml"
    pipeline.write_text(MODELS + "stages:\n" + stages)
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert err.strip() == f"error: {pipeline}:3: 2,001 stages; a pipeline has at most 2,000"


def test_aliases_repeat_their_values_with_the_line_where_they_are_used(tmp_path):
    parsed = parse_yaml(tmp_path / "p.yaml", "a: &a {x: [1, two]}\nb:\n  - *a\n  - &s text\n  - *s\n")
    assert parsed.problems == []
    assert parsed.data == {"a": {"x": [1, "two"]}, "b": [{"x": [1, "two"]}, "text", "text"]}
    assert [parsed.line_of(("b", index)) for index in range(3)] == [3, 4, 5]
    assert parsed.line_of(("b", 0, "x")) == 1  # the repeated value's own keys are where it was written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("a: 1\nb: *nope\n", "found undefined alias 'nope'"),
        ("a: &x 1\nb: &x 2\n", "found duplicate anchor 'x'"),
        ("a: [1\nb: 2\n", "while parsing a flow sequence"),
    ],
    ids=["two-documents", "undefined-alias", "duplicate-anchor", "syntax"],
)
def test_what_yaml_itself_refuses_is_a_syntax_error(tmp_path, text, message):
    parsed = parse_yaml(tmp_path / "p.yaml", text)
    assert parsed.data is None and [problem.line for problem in parsed.problems] == [2]
    problem = parsed.problems[0].message
    assert problem.startswith("YAML syntax error") and message in problem


def test_a_file_with_thousands_of_problems_reports_the_first_hundred(tmp_path, capsys):
    stages = [f"  s{i}: {{model: smol, prompt: '{{{{ input }}}}'}}" for i in range(300)]
    edges = [f"  - {{from: s{i}, to: nope{i}}}" for i in range(300)]
    pipeline = tmp_path / "many.yaml"
    pipeline.write_text(MODELS + "stages:\n" + "\n".join(stages) + "\nedges:\n" + "\n".join(edges) + "\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 101 and lines[-1].startswith("… the first 100 problems are shown")
    assert "edge 1 'to' names unknown stage 'nope0'" in lines[0] and "… (281 more))" in lines[0]


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "(" * 400 + "input" + ")" * 400 + " }}",
        "{% if input %}" * 400 + "{% endif %}" * 400,
        "{{ input" + " + input" * 3000 + " }}",
        "{{ input" + "|trim" * 3000 + " }}",
    ],
    ids=["brackets", "blocks", "operators", "filters"],
)
def test_a_template_nested_thousands_deep_is_a_problem(tmp_path, capsys, source):
    pipeline = tmp_path / "deep.yaml"
    pipeline.write_text(MODELS + "stages:\n  a:\n    model: smol\n    prompt: |\n      " + source + "\n")
    code, err = validate(pipeline, capsys)
    assert code == 2
    assert f"{pipeline}:7: stage 'a' prompt: the template is nested too deeply" in err
