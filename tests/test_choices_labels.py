"""Choice stages with a verbalizer (`choices: {label: text}`): the model scores each label's text, the stage
writes the label; training maps a record's label to its text; `fslm eval` scores against labels; bad
mappings are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fslm.cli.main import main
from fslm.pipeline import load_pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.runtime.scoring import ScoreRequest

LABELS = {"card_arrival": "card arrival", "lost_or_stolen_card": "lost or stolen card", "Sci/Tech": "science"}
VERBALIZED = """inputs: [text]
stages:
  label:
    model: m
    prompt: "Message: {{ text }}\\nIntent:"
    normalize: none
    choices:
      card_arrival: card arrival
      lost_or_stolen_card: lost or stolen card
      "Sci/Tech": science
"""
ITEMS = [{"text": "where is my new card"}, {"text": "someone took my card"}, {"text": "rockets and atoms"}]


def write_pipeline(tmp_path: Path, model: Path, body: str) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(f"models:\n  m: {{source: {model}, dtype: float32}}\n" + body)
    return path


@pytest.mark.slow
def test_the_stage_scores_each_labels_text_and_writes_the_label(tmp_path: Path, tiny_model: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, tiny_model, VERBALIZED), store=":memory:")
    results = pipeline.batch(ITEMS)
    texts = list(LABELS.values())
    with Runtime({"m": ModelRef(str(tiny_model), "float32")}) as runtime:
        expected = runtime.serve(
            [
                ScoreRequest("m", f"Message: {item['text']}\nIntent:", tuple(f" {text}" for text in texts))
                for item in ITEMS
            ]
        )
    for result, scores in zip(results, expected, strict=True):
        record = result.messages[0]["choices"]
        assert record["options"] == texts
        assert record["labels"] == list(LABELS)
        assert record["scorers"][0]["logprobs"] == pytest.approx(list(scores.logprobs), abs=1e-5)
        best = max(range(len(texts)), key=lambda index: (scores.logprobs[index], -index))
        assert result.output == result.messages[0]["text"] == list(LABELS)[best]
    alone = [pipeline.invoke(item).output for item in ITEMS]
    assert alone == [result.output for result in results]


@pytest.mark.slow
def test_eval_scores_the_label_against_the_answer_field(
    tmp_path: Path, tiny_model: Path, capsys: Any
) -> None:
    path = write_pipeline(tmp_path, tiny_model, VERBALIZED)
    outputs = [result.output for result in load_pipeline(path, store=":memory:").batch(ITEMS)]
    data = tmp_path / "dev.jsonl"
    gold = ["card_arrival", "lost_or_stolen_card", "Sci/Tech"]
    data.write_text("".join(json.dumps({**item, "label": label}) + "\n" for item, label in zip(ITEMS, gold)))
    results = tmp_path / "results.jsonl"
    command = ["eval", str(path), "--data", str(data), "--answer-field", "label", "--output", str(results)]
    assert main([*command, "--store", str(tmp_path / "runs.sqlite")]) == 0
    rows = [json.loads(line) for line in results.read_text().split("\n") if line]
    assert [row["reference"] for row in rows] == gold
    assert [row["scores"]["acc"] for row in rows] == [float(o == g) for o, g in zip(outputs, gold)]


def test_eval_refuses_an_answer_that_is_no_label(tmp_path: Path, tiny_model: Path, capsys: Any) -> None:
    path = write_pipeline(tmp_path, tiny_model, VERBALIZED)
    data = tmp_path / "dev.jsonl"
    data.write_text(json.dumps({"text": "hello", "label": "card arrival"}) + "\n")
    command = ["eval", str(path), "--data", str(data), "--answer-field", "label"]
    assert main([*command, "--store", str(tmp_path / "runs.sqlite")]) == 2
    shown = " ".join(capsys.readouterr().err.split())
    assert "answer 'card arrival' (field 'label') is not among its options ('card_arrival'" in shown


def test_training_targets_are_the_labels_texts(tmp_path: Path, tiny_model: Path) -> None:
    from fslm.finetune.recipe import DatasetSource
    from fslm.finetune.sources import examples_from_dataset

    stage = load_pipeline(write_pipeline(tmp_path, tiny_model, VERBALIZED), store=":memory:").spec.stages[
        "label"
    ]
    data = tmp_path / "train.jsonl"
    rows = [
        {"text": "a", "label": "Sci/Tech"},
        {"text": "b", "label": "card_arrival"},
        {"text": "c", "label": 1},
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    examples = examples_from_dataset(DatasetSource(path=data, target="label"), ["text"], stage)
    assert [example.target for example in examples] == ["science", "card arrival", "lost or stolen card"]
    limited = examples_from_dataset(DatasetSource(path=data, target="label", limit=2), ["text"], stage)
    assert [example.target for example in limited] == ["science", "card arrival"]


def test_training_refuses_a_label_the_stage_lacks(tmp_path: Path, tiny_model: Path, capsys: Any) -> None:
    path = write_pipeline(tmp_path, tiny_model, VERBALIZED)
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"text": "a", "label": "card arrival"}) + "\n")
    command = [
        "finetune",
        str(path),
        "--stage",
        "label",
        "--data",
        str(data),
        "--output",
        str(tmp_path / "out"),
    ]
    data.write_text(json.dumps({"text": "a", "target": "lost"}) + "\n")
    assert main(command) == 2
    shown = " ".join(capsys.readouterr().err.split())
    assert "record 1: target 'lost' is not one of the stage's labels ('card_arrival'" in shown
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ("{a: same, b: same}", "labels share an option text"),
        ("{a: only}", "a choice needs at least two options"),
        ("{a: '', b: text}", "an option is empty"),
        ("{a: 'yes', b: 3}", "must be text (quote numbers)"),
    ],
)
def test_validate_refuses_a_bad_mapping(
    tmp_path: Path, tiny_model: Path, capsys: Any, choices: str, message: str
) -> None:
    body = f'stages:\n  label:\n    model: m\n    prompt: "{{{{ input }}}}"\n    choices: {choices}\n'
    assert main(["validate", str(write_pipeline(tmp_path, tiny_model, body))]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_runs_show_lists_labels_and_only_the_most_probable_of_many_options(
    tmp_path: Path, tiny_model: Path
) -> None:
    from rich.console import Console

    from fslm.cli.show import record_table
    from fslm.nodes.choices.decision import choose, scorer_record
    from fslm.nodes.choices.show import SHOWN_OPTIONS, choices_table

    count = SHOWN_OPTIONS + 5
    options = [f"option {index}" for index in range(count)]
    logprobs = [-float(index % 7) - index / 100 for index in range(count)]
    sizes = [len(option) for option in options]
    record = choose(options, sizes, "none", [scorer_record("m", logprobs, [2] * count, sizes, "none")], [1.0])
    record["labels"] = [f"label_{index}" for index in range(count)]
    console = Console(record=True, width=200)
    console.print(record_table(choices_table(record)))
    shown = console.export_text()
    most_probable = sorted(range(count), key=lambda index: -logprobs[index])[:SHOWN_OPTIONS]
    for index in range(count):
        assert (f"label_{index} " in shown) == (index in most_probable)
    assert "… 5 less probable options not shown" in shown
