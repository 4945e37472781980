"""Training examples from data files, recorded runs and a teacher, and every bad input as exit code 2."""

import json
from pathlib import Path

import pytest
from tiny import make_tiny_model

from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.finetune.recipe import DatasetSource, MetricFilter, RunsSource, TeacherSource
from fslm.finetune.sources import examples_from_dataset, examples_from_runs, examples_from_teacher
from fslm.pipeline import load_pipeline
from fslm.spec import load_spec

PIPELINE = """# keep me
models:
  m: {{source: {model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "one {{{{ input }}}}", generation: {{max_new_tokens: 4}}}}
  second: {{model: m, prompt: "two {{{{ first }}}} for {{{{ input }}}}", generation: {{max_new_tokens: 4}}}}
"""


def write_pipeline(path: Path, model: Path) -> Path:
    path.write_text(PIPELINE.format(model=model))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def pipeline_file(tmp_path, tiny_model) -> Path:
    return write_pipeline(tmp_path / "two.yaml", tiny_model)


@pytest.fixture
def data_file(tmp_path) -> Path:
    return write_jsonl(
        tmp_path / "data.jsonl",
        [{"input": f"cat {i}", "first": f"dog {i}", "target": f"water {i}"} for i in range(12)],
    )


def finetune_cli(*args: str) -> int:
    return main(["finetune", *map(str, args), "--max-steps", "2", "--batch-size", "4", "--r", "4"])


@pytest.mark.slow
def test_csv_and_parquet_read_like_jsonl(tmp_path):
    import pyarrow as pa
    from pyarrow import parquet

    rows = [{"question": "cat", "first": "dog", "answer": "7"}]
    (tmp_path / "d.csv").write_text("question,first,answer\ncat,dog,7\n")
    parquet.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        source = DatasetSource(path=tmp_path / name, fields={"input": "question"}, target="answer")
        [example] = examples_from_dataset(source, ["first", "input"])
        assert (example.variables, example.target) == ({"first": "dog", "input": "cat"}, "7")


def test_examples_from_runs_carry_the_upstream_text_the_stage_saw(pipeline_file, tmp_path):
    store = tmp_path / "runs.sqlite"
    pipeline = load_pipeline(pipeline_file, store=store)
    results = pipeline.batch(["the cat", "the dog"])
    pipeline.close()
    spec = load_spec(pipeline_file)
    examples = examples_from_runs(RunsSource(store=store), spec, "second", ["first", "input"])
    by_input = {example.variables["input"]: example for example in examples}
    for result in results:
        first, second = result.messages
        assert by_input[result.input].variables == {"first": first["text"], "input": result.input}
        assert by_input[result.input].target == second["text"]

    references = write_jsonl(
        tmp_path / "refs.jsonl", [{"input": r.input, "answer": r.output} for r in results[:1]]
    )
    kept = examples_from_runs(
        RunsSource(store=store, filter=MetricFilter(references=references, metric="exact")),
        spec,
        "second",
        ["first", "input"],
    )
    assert [example.variables["input"] for example in kept] == [results[0].input]

    # A reference may list several accepted answers, or be a number (compared as its text).
    references = write_jsonl(
        tmp_path / "refs.jsonl",
        [
            {"input": results[0].input, "answer": ["no", results[0].output]},
            {"input": results[1].input, "answer": 7},
        ],
    )
    kept = examples_from_runs(
        RunsSource(store=store, filter=MetricFilter(references=references, metric="exact")),
        spec,
        "second",
        ["first", "input"],
    )
    assert [example.variables["input"] for example in kept] == [results[0].input]


def test_teacher_model_writes_the_targets_and_its_runs_are_recorded(pipeline_file, tiny_model, tmp_path):
    inputs = write_jsonl(tmp_path / "inputs.jsonl", [{"question": "the cat"}, {"question": "a dog"}])
    source = TeacherSource(
        model=str(tiny_model), inputs=inputs, field="question", store=tmp_path / "t.sqlite"
    )
    examples = examples_from_teacher(source, load_spec(pipeline_file), "second", ["first", "input"])
    assert sorted(example.variables["input"] for example in examples) == ["a dog", "the cat"]
    assert all(example.variables["first"] for example in examples)


def test_misnamed_fields_list_the_available_fields(pipeline_file, tmp_path, capsys):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "first": "f", "answer": "a"}])
    assert finetune_cli(pipeline_file, "--stage", "second", "--data", data, "--output", tmp_path / "o") == 2
    message = capsys.readouterr().err
    assert "no field 'input' (for template variable 'input'), 'target' (for the target text)" in message
    assert "fields available: question, first, answer" in message
    assert not (tmp_path / "o").exists()


def test_a_mapping_of_a_variable_the_template_does_not_use_is_refused(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"input": "q", "target": "t"}])
    with pytest.raises(
        FslmError,
        match="names planx, which the stage's template does not use; its variables are first, input",
    ):
        examples_from_dataset(DatasetSource(path=data, fields={"planx": "input"}), ["first", "input"])


def test_empty_data_and_empty_filter_results_are_refused(pipeline_file, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert finetune_cli(pipeline_file, "--stage", "second", "--data", empty) == 2
    assert "holds no records" in capsys.readouterr().err

    store = tmp_path / "runs.sqlite"
    pipeline = load_pipeline(pipeline_file, store=store)
    pipeline.batch(["the cat"])
    pipeline.close()
    write_jsonl(tmp_path / "refs.jsonl", [{"input": "the cat", "answer": "never written"}])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "target: {pipeline: two.yaml, stage: second}\n"
        "data:\n  from_runs: {store: runs.sqlite, filter: {references: refs.jsonl, metric: exact}}\n"
        "output: out\n"
    )
    assert finetune_cli(recipe) == 2
    assert "none passed the metric filter" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_stage_and_recipe_typos_are_refused(pipeline_file, data_file, tmp_path, capsys):
    assert finetune_cli(pipeline_file, "--stage", "thrid", "--data", data_file) == 2
    assert "has no stage 'thrid'; its stages: first, second" in capsys.readouterr().err
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "target: {pipeline: two.yaml, stage: second}\ndata:\n  dataset: {path: data.jsonl}\n"
        "train: {max_step: 3}\noutput: out\n"
    )
    assert main(["finetune", str(recipe)]) == 2
    assert "recipe.yaml:4: unknown key 'max_step'" in capsys.readouterr().err


@pytest.mark.slow
def test_output_holding_another_adapter_is_kept_without_force(pipeline_file, data_file, tmp_path, capsys):
    output = tmp_path / "adapter"
    assert finetune_cli(pipeline_file, "--stage", "second", "--data", data_file, "--output", output) == 0
    before = {path.name: path.read_bytes() for path in output.iterdir()}
    other = write_jsonl(tmp_path / "other.jsonl", [{"input": "x", "first": "y", "target": "z"}] * 8)
    assert finetune_cli(pipeline_file, "--stage", "second", "--data", other, "--output", output) == 2
    assert "holds a different adapter" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before
    assert (
        finetune_cli(pipeline_file, "--stage", "second", "--data", other, "--output", output, "--force") == 0
    )
    assert (output / "adapter_model.safetensors").read_bytes() != before["adapter_model.safetensors"]


@pytest.mark.slow
@pytest.mark.parametrize("other_kind", ["same shape, other weights", "other shape"])
def test_adapter_trained_on_another_base_is_refused_at_attach_and_at_load(
    pipeline_file, data_file, tmp_path, tmp_path_factory, capsys, other_kind
):
    other_model = make_tiny_model(
        tmp_path_factory.mktemp("other"), seed=1, sentencepiece=other_kind == "other shape"
    )
    other_pipeline = write_pipeline(tmp_path / "other.yaml", other_model)
    original = other_pipeline.read_text()
    output = tmp_path / "adapter"
    assert (
        finetune_cli(
            pipeline_file,
            "--stage",
            "second",
            "--data",
            data_file,
            "--output",
            output,
            "--attach",
            other_pipeline,
        )
        == 2
    )
    assert "was trained on" in capsys.readouterr().err
    assert other_pipeline.read_text() == original

    with_adapter = original.replace("second: {model: m,", f"second: {{model: m, adapter: {output},")
    other_pipeline.write_text(with_adapter)
    assert main(["run", str(other_pipeline), "hello", "--store", str(tmp_path / "r.sqlite")]) == 2
    message = capsys.readouterr().err
    assert "was trained on another base model" in message
    assert ("shape differs" if other_kind == "other shape" else "weights differ") in message
