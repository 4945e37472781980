"""Recorded text that looks like Rich markup, emoji codes or terminal control prints as it is, in every
command."""

import json
from pathlib import Path

import pytest
from test_graph import ScriptedRuntime

from fslm.cli.main import main
from fslm.errors import FslmError

INPUT = r"Explain the regex [/\w+/] please [bold]"
NAME = "[/]named [bold]pipe[link=https://x]"
OUTPUT_A = "a said [/] then [bold]loud :smile: [link=https://x]click"
OUTPUT_B = "b said [red]x[/red] \\"
FAILING_INPUT = "explode [/]"
ERROR = "the model refused [/] [bold]this[link=https://x]"


class RefusingRuntime(ScriptedRuntime):
    def submit(self, request):
        if "explode" in request.prompt:
            raise FslmError(ERROR)
        return super().submit(request)


@pytest.fixture
def odd(tmp_path, monkeypatch) -> dict[str, Path]:
    """Two pipelines (one named by its YAML, one by its file) on a scripted runtime, and a store path."""
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping or cropping, so each text shows in one piece
    monkeypatch.setattr(
        "fslm.pipeline.Runtime",
        lambda models, **_: RefusingRuntime({"A ": OUTPUT_A, "B ": OUTPUT_B}),
    )
    folder = tmp_path / "[dim]files"  # a file name cannot hold [/]
    folder.mkdir()
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    body = f"""models:
  m: {{source: "{model}"}}
stages:
  a: {{model: m, prompt: "A {{{{ input }}}}"}}
  b: {{model: m, prompt: "B {{{{ a }}}}"}}
"""
    named = folder / "named.yaml"
    named.write_text(f"name: {json.dumps(NAME)}\n" + body)
    unnamed = folder / "[bold]file[link=x].yaml"
    unnamed.write_text(body)
    return {"named": named, "unnamed": unnamed, "store": folder / "runs.sqlite", "folder": folder}


def cli(capsys, *args: str, code: int = 0) -> tuple[str, str]:
    assert main(list(args)) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "MarkupError" not in err
    return out, err


def recorded_ids(capsys, store: Path) -> list[str]:
    out, _ = cli(capsys, "runs", "list", "--store", str(store), "--json")
    return [run["run_id"] for run in reversed(json.loads(out))]


def test_run_shows_markup_like_text_as_it_is(odd, capsys):
    out, _ = cli(capsys, "run", str(odd["named"]), INPUT, "--prompts", "--store", str(odd["store"]))
    for text in (NAME, OUTPUT_A, OUTPUT_B, f"A {INPUT}"):
        assert text in out
    out, _ = cli(capsys, "run", str(odd["unnamed"]), INPUT, "--store", str(odd["store"]))
    assert "[bold]file[link=x]" in out and OUTPUT_B in out


def test_a_recorded_error_with_markup_is_shown_as_it_is(odd, capsys):
    _, err = cli(capsys, "run", str(odd["named"]), FAILING_INPUT, "--store", str(odd["store"]), code=2)
    assert ERROR in err
    (failed,) = recorded_ids(capsys, odd["store"])
    out, _ = cli(capsys, "runs", "show", failed, "--store", str(odd["store"]))
    assert ERROR in out and FAILING_INPUT in out and NAME in out


def test_batch_run_shows_names_and_paths_as_they_are(odd, capsys):
    inputs = odd["folder"] / "in.jsonl"
    inputs.write_text(json.dumps({"input": INPUT}) + "\n")
    output = odd["folder"] / "[red]out.jsonl"
    _, err = cli(
        capsys,
        "run",
        str(odd["named"]),
        "--input-file",
        str(inputs),
        "--output",
        str(output),
        "--store",
        str(odd["store"]),
    )
    assert NAME in err and f"wrote 1 results to {output}" in err


def test_runs_commands_show_recorded_text_as_it_is(odd, capsys):
    store = ["--store", str(odd["store"])]
    cli(capsys, "run", str(odd["named"]), INPUT, *store)
    cli(capsys, "run", str(odd["unnamed"]), INPUT + " again", *store)
    first, second = recorded_ids(capsys, odd["store"])

    out, _ = cli(capsys, "runs", "list", *store)
    for text in (INPUT, NAME, "[bold]file[link=x]"):
        assert text in out

    out, _ = cli(capsys, "runs", "show", first, "--prompts", *store)
    for text in (INPUT, NAME, str(odd["named"]), OUTPUT_A, OUTPUT_B, f"B {OUTPUT_A}"):
        assert text in out

    out, _ = cli(capsys, "runs", "diff", first, second, *store)
    assert OUTPUT_A in out and OUTPUT_B in out

    pairs = odd["folder"] / "[bold]pairs.jsonl"
    _, err = cli(capsys, "runs", "export", first, "--stage", "a", "--output", str(pairs), *store)
    assert f"to {pairs}" in err
    assert json.loads(pairs.read_text())["completion"] == OUTPUT_A

    edit = "[/] edited [bold]text :smile:"
    out, _ = cli(capsys, "runs", "replay", first, "--from", "b", "--set", f"a={edit}", *store)
    assert edit in out and f"replay of {first}" in out


def test_eval_table_shows_pipeline_names_as_they_are(odd, capsys):
    data = odd["folder"] / "items.jsonl"
    data.write_text(json.dumps({"input": INPUT, "answer": "b said"}) + "\n")
    out, err = cli(
        capsys,
        "eval",
        str(odd["named"]),
        "--data",
        str(data),
        "--metric",
        "contains",
        "--compare",
        str(odd["unnamed"]),
        "--output",
        str(odd["folder"] / "[x].jsonl"),
        "--store",
        str(odd["store"]),
    )
    assert NAME in out and "[bold]file[link=x]" in out
    assert str(odd["folder"] / "[x].jsonl") in err


def test_validate_shows_the_file_name_as_it_is(odd, capsys):
    out, _ = cli(capsys, "validate", str(odd["unnamed"]))
    assert str(odd["unnamed"]) in out


def test_errors_show_paths_as_they_are(odd, capsys):
    missing = odd["folder"] / "[bold]missing :smile:.yaml"
    _, err = cli(capsys, "validate", str(missing), code=2)
    assert str(missing) in err


def test_control_characters_in_recorded_text_do_not_reach_the_terminal(odd, capsys, monkeypatch):
    monkeypatch.setattr(
        "fslm.pipeline.Runtime",
        lambda models, **_: ScriptedRuntime({"A ": "red \x1b[31m bell \x07"}),
    )
    out, _ = cli(capsys, "run", str(odd["named"]), "title \x1b]0;owned\x07", "--store", str(odd["store"]))
    assert "\x1b" not in out and "\x07" not in out
    assert "red \\x1b[31m bell \\x07" in out
    out, _ = cli(capsys, "runs", "list", "--store", str(odd["store"]))
    assert "\x1b" not in out and "title \\x1b]0;owned\\x07" in out
