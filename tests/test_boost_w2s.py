"""`fslm finetune w2s`: easy / hard split, weak ensemble labels, strong stages, the report; bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny import make_tiny_model

from fslm.cli.main import main
from fslm.finetune.boost.report import gap_recovered, pgr, w2s_report

OPTIONS = ["the cat", "the dog", "a river", "four"]
GOALS = ["who sat on the mat", "what slept by the door", "what flows to the sea", "two plus two"]


def records(count: int) -> str:
    items = [
        {"goal": GOALS[i % 4], "choices": OPTIONS, "answer": i % 4, "level": "easy" if i % 3 else "hard"}
        for i in range(count)
    ]
    return "".join(json.dumps(item) + "\n" for item in items)


@pytest.mark.slow
def test_pgr_and_its_interval() -> None:
    assert pgr(0.5, 0.6, 0.7) == pytest.approx(0.5) and pgr(0.5, 0.6, 0.5) is None
    correct = {
        "weak_single": [1.0] * 40 + [0.0] * 60,
        "weak_ensemble": [1.0] * 45 + [0.0] * 55,
        "strong_on_single": [1.0] * 50 + [0.0] * 50,
        "strong_on_ensemble": [1.0] * 55 + [0.0] * 45,
        "strong_on_gold": [1.0] * 60 + [0.0] * 40,
    }
    gap = gap_recovered(correct, "strong_on_ensemble")
    assert gap.value == pytest.approx(0.75) and gap.low < 0.75 < gap.high
    report = w2s_report(correct)
    assert report["paired"]["weak_ensemble vs weak_single"]["wins"] == 5
    assert report["paired"]["strong_on_gold vs strong_on_ensemble"]["wins"] == 5
    assert report["systems"]["strong_on_gold"]["accuracy"] == pytest.approx(0.6)


@pytest.fixture
def recipe(tmp_path: Path, tiny_model: Path) -> Path:
    strong = make_tiny_model(tmp_path / "strong", seed=3)
    stage = "    choices: '{{ choices }}'\n    prompt: 'Q: {{ goal }}. A:'\n"
    for name, model in (("weak", tiny_model), ("strong", strong)):
        (tmp_path / f"{name}.yaml").write_text(
            f"models:\n  m: {{source: {model}, dtype: float32}}\ninputs: [goal, choices]\n"
            f"stages:\n  pick:\n    model: m\n{stage}"
        )
    (tmp_path / "train.jsonl").write_text(records(18))
    (tmp_path / "test.jsonl").write_text(records(8))
    (tmp_path / "w2s.yaml").write_text(
        "weak:\n  target: {pipeline: weak.yaml, stage: pick}\n  data: {path: train.jsonl, target: answer}\n"
        "  rounds: 2\n  lora: {r: 4}\n"
        "  train: {max_steps: 2, batch_size: 8, learning_rate: 0.01, max_length: 64}\n"
        "strong:\n  target: {pipeline: strong.yaml, stage: pick}\n"
        "  train: {max_steps: 2, batch_size: 8, learning_rate: 0.01, max_length: 64}\n"
        "test: {path: test.jsonl, target: answer}\nsplit: {field: level, easy: [easy]}\noutput: out\n"
    )
    return tmp_path / "w2s.yaml"


@pytest.mark.slow
def test_w2s_trains_and_reports_all_five_systems(recipe: Path, capsys: Any) -> None:
    assert main(["finetune", "w2s", str(recipe)]) == 0
    output = recipe.parent / "out"
    report = json.loads((output / "w2s.json").read_text())
    assert report["split"] == {"easy": 12, "hard": 6, "by": "level"} and report["items"] == 8
    assert set(report["systems"]) == {
        "weak_single",
        "weak_ensemble",
        "strong_on_single",
        "strong_on_ensemble",
        "strong_on_gold",
    }
    assert all(len(scores) == 8 for scores in report["correct"].values())
    assert set(report["phase_seconds"]) >= {"split", "weak ensemble", "labels", "strong on gold labels"}
    assert report["metric"] == "accuracy" and len((output / "labels.jsonl").read_text().splitlines()) == 6
    assert (output / "weak" / "boost.json").is_file() and (
        output / "strong_on_gold" / "adapter_config.json"
    ).is_file()
    out = capsys.readouterr()
    assert "strong on ensemble labels" in out.out and "only 8 test items" in out.err


def test_a_split_leaving_no_hard_items_exits_2(recipe: Path, capsys: Any) -> None:
    recipe.write_text(recipe.read_text().replace("easy: [easy]", "easy: [easy, hard]"))
    assert main(["finetune", "w2s", str(recipe)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the hard split is empty: splitting 18 examples by field 'level'" in err
    assert not (recipe.parent / "out").exists()


def test_a_strong_stage_on_the_weak_model_is_warned_about(recipe: Path, capsys: Any) -> None:
    recipe.write_text(
        recipe.read_text().replace("strong.yaml", "weak.yaml").replace("easy: [easy]", "easy: [none]")
    )
    assert main(["finetune", "w2s", str(recipe)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: the strong stage runs on" in err and "self-training" in err
    assert "the easy split is empty" in err


def test_a_metric_for_choices_stages_exits_2(recipe: Path, capsys: Any) -> None:
    recipe.write_text(recipe.read_text() + "metric: exact\n")
    assert main(["finetune", "w2s", str(recipe)]) == 2
    assert "metric: exact scores written answers" in " ".join(capsys.readouterr().err.split())
    assert not (recipe.parent / "out").exists()


def test_empty_test_data_exits_2(recipe: Path, capsys: Any) -> None:
    (recipe.parent / "test.jsonl").write_text("")
    assert main(["finetune", "w2s", str(recipe)]) == 2
    assert "holds no items" in " ".join(capsys.readouterr().err.split())
    assert not (recipe.parent / "out").exists()
