"""`fslm finetune w2s` on text stages: labels written by greedy generation through the runtime (the first
member alone, and the boost stage's α-weighted mixture), strong stages scored by a metric; bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny import make_tiny_model

from fslm.cli.main import main
from fslm.eval.metrics import score
from fslm.finetune.boost.labels import text_labels, text_scores
from fslm.finetune.boost.report import w2s_report
from fslm.finetune.boost.rounds import Boosted
from fslm.finetune.boost.task import BoostExample, read_examples
from fslm.finetune.recipe import DatasetSource
from fslm.finetune.sources import Example
from fslm.pipeline import load_pipeline
from fslm.spec import load_spec

PAIRS = [("two plus two", "four"), ("the capital of France", "Paris"), ("what boils water", "heat")]
STAGE = "    chat_template: false\n    prompt: 'Q: {{ question }} A:'\n    generation: {max_new_tokens: 6}\n"


def records(count: int) -> str:
    items = [
        {
            "question": PAIRS[i % 3][0],
            "answer": PAIRS[i % 3][1],
            "level": "hard" if i % 3 == i // 3 % 3 else "easy",  # 6 of 18 hard, each pair in both parts
        }
        for i in range(count)
    ]
    return "".join(json.dumps(item) + "\n" for item in items)


def write_recipe(root: Path, weak_model: Path, strong_model: Path) -> Path:
    for name, model in (("weak", weak_model), ("strong", strong_model)):
        (root / f"{name}.yaml").write_text(
            f"models:\n  m: {{source: {model}, dtype: float32}}\ninputs: [question]\n"
            f"stages:\n  answer:\n    model: m\n{STAGE}"
        )
    (root / "train.jsonl").write_text(records(18))
    (root / "test.jsonl").write_text(records(6))
    (root / "w2s.yaml").write_text(
        "weak:\n  target: {pipeline: weak.yaml, stage: answer}\n  data: {path: train.jsonl, target: answer}\n"
        "  rounds: 2\n  error: token\n  lora: {r: 8}\n"
        "  train: {max_steps: 1, batch_size: 12, learning_rate: 0.02, max_length: 64}\n"
        "strong:\n  target: {pipeline: strong.yaml, stage: answer}\n"
        "  train: {epochs: 10, batch_size: 6, learning_rate: 0.02, max_length: 64}\n"
        "test: {path: test.jsonl, target: answer}\nsplit: {field: level, easy: [easy]}\noutput: out\n"
    )
    return root / "w2s.yaml"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """One text-stage run, shared by the tests that read what it wrote: its output directory."""
    root = tmp_path_factory.mktemp("w2s-text")
    recipe = write_recipe(root, tiny_model, make_tiny_model(root / "strong-model", seed=3))
    assert main(["finetune", "w2s", str(recipe)]) == 0
    return root / "out"


@pytest.fixture
def recipe(tmp_path: Path, tiny_model: Path) -> Path:
    return write_recipe(tmp_path, tiny_model, tiny_model)


@pytest.mark.slow
def test_a_text_run_writes_the_report_and_the_label_sets(finished: Path) -> None:
    report = json.loads((finished / "w2s.json").read_text())
    assert report["metric"] == "exact" and report["items"] == 6
    assert report["split"] == {"easy": 12, "hard": 6, "by": "level"}
    assert set(report["correct"]) == set(report["systems"]) and len(report["systems"]) == 5
    assert all(len(scores) == 6 and set(scores) <= {0.0, 1.0} for scores in report["correct"].values())
    assert {"labels", "strong on gold labels", "strong on test items"} <= set(report["phase_seconds"])
    labels = [json.loads(line) for line in (finished / "labels.jsonl").read_text().splitlines()]
    hard = [json.loads(line) for line in records(18).splitlines() if '"hard"' in line]
    assert [label["gold"] for label in labels] == [item["answer"] for item in hard]
    assert [label["variables"] for label in labels] == [{"question": item["question"]} for item in hard]
    assert report["label_agreement_with_gold"] == {
        name: sum(score("exact", label[name], label["gold"]) for label in labels) / 6
        for name in ("single", "ensemble")
    }
    for name in ("single", "ensemble", "gold"):
        assert (finished / f"strong_on_{name}" / "adapter_config.json").is_file()
    assert len(json.loads((finished / "weak" / "boost.json").read_text())["members"]) == 2


@pytest.mark.slow
def test_the_labels_and_scores_are_what_the_stages_write(finished: Path, tiny_model: Path) -> None:
    """The ensemble's labels are the boost stage's greedy text, the single ones a plain stage's with the first
    member's adapter; the test scores are those stages' (and the strong adapters') exact matches."""
    weak = json.loads((finished / "weak" / "boost.json").read_text())
    adapters = [finished / "weak" / member["adapter"] for member in weak["members"]]
    members = ", ".join(f"{{model: w, adapter: {adapter}}}" for adapter in adapters)
    (finished.parent / "stages.yaml").write_text(
        f"models:\n  w: {{source: {tiny_model}, dtype: float32}}\n"
        f"  s: {{source: {finished.parent / 'strong-model'}, dtype: float32}}\ninputs: [question]\nstages:\n"
        f"  single:\n    model: w\n    adapter: {adapters[0]}\n{STAGE}"
        f"  vote:\n    boost: {{members: [{members}], checkpoint: {finished / 'weak'}}}\n{STAGE}"
        + "".join(
            f"  strong_{name}:\n    model: s\n    adapter: {finished / f'strong_on_{name}'}\n{STAGE}"
            for name in ("single", "ensemble", "gold")
        )
    )
    pipeline = load_pipeline(finished.parent / "stages.yaml", store=":memory:")

    def written(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        results = pipeline.batch([{"question": item["question"]} for item in items])
        return [{message["stage"]: message["text"] for message in result.messages} for result in results]

    labels = [json.loads(line) for line in (finished / "labels.jsonl").read_text().splitlines()]
    hard = written([label["variables"] for label in labels])
    assert [label["ensemble"] for label in labels] == [texts["vote"] for texts in hard]
    assert [label["single"] for label in labels] == [texts["single"] for texts in hard]
    test = [json.loads(line) for line in records(6).splitlines()]
    texts = written(test)
    correct = json.loads((finished / "w2s.json").read_text())["correct"]
    assert sum(correct["strong_on_gold"]) > sum(correct["weak_single"])  # right and wrong answers to score
    for system, stage in (
        ("weak_single", "single"),
        ("weak_ensemble", "vote"),
        *((f"strong_on_{name}", f"strong_{name}") for name in ("single", "ensemble", "gold")),
    ):
        assert correct[system] == [score("exact", t[stage], item["answer"]) for t, item in zip(texts, test)]
    pipeline.close()


@pytest.mark.slow
def test_ensemble_labels_are_the_boost_stages_text_and_single_labels_the_first_members(
    tmp_path: Path, tiny_model: Path, tiny_adapters: tuple[Path, Path]
) -> None:
    """With two members that write differently, the labels and the test scores follow the boost stage's
    mixture and the first member's own text."""
    members = ", ".join(f"{{model: m, adapter: {adapter}}}" for adapter in tiny_adapters)
    (tmp_path / "stages.yaml").write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\ninputs: [question]\nstages:\n"
        f"  answer:\n    model: m\n{STAGE}"
        f"  single:\n    model: m\n    adapter: {tiny_adapters[0]}\n{STAGE}"
        f"  vote:\n    boost: {{members: [{members}], alphas: [1.0, 3.0]}}\n{STAGE}"
    )
    spec = load_spec(tmp_path / "stages.yaml")
    questions = ["two plus two", "the capital of France", "what boils water", "who sat on the mat", "rivers"]
    items = [BoostExample(Example({"question": question}, "four")) for question in questions]
    boosted = Boosted(adapters=list(tiny_adapters), alphas=[1.0, 3.0])
    labels = text_labels(spec, "answer", boosted, (items, items), items, "f1")
    pipeline = load_pipeline(tmp_path / "stages.yaml", store=":memory:")
    results = pipeline.batch([{"question": question} for question in questions])
    pipeline.close()
    written = [{message["stage"]: message["text"] for message in result.messages} for result in results]
    assert [item.example.target for item in labels.training["ensemble"]] == [t["vote"] for t in written]
    assert [item.example.target for item in labels.training["single"]] == [t["single"] for t in written]
    assert [t["vote"] for t in written] != [t["single"] for t in written]
    assert labels.training["gold"] == items
    assert labels.scores["weak_ensemble"] == [score("f1", t["vote"], "four") for t in written]
    assert labels.scores["weak_single"] == [score("f1", t["single"], "four") for t in written]


def test_a_list_of_accepted_answers_trains_on_the_first_and_accepts_any(recipe: Path) -> None:
    (recipe.parent / "aliases.jsonl").write_text(
        json.dumps({"question": "a musical", "answer": ["Sunset Blvd", "Sunset Boulevard"]}) + "\n"
    )
    spec = load_spec(recipe.parent / "weak.yaml")
    source = DatasetSource(path=recipe.parent / "aliases.jsonl", target="answer")
    (item,) = read_examples(source, spec, "answer")
    assert item.example.target == "Sunset Blvd"
    assert text_scores("exact", ["sunset boulevard", "Sunset"], [item, item]) == [1.0, 0.0]


def test_a_target_listing_no_answer_exits_2(recipe: Path, capsys: Any) -> None:
    (recipe.parent / "test.jsonl").write_text(json.dumps({"question": "a musical", "answer": []}) + "\n")
    assert main(["finetune", "w2s", str(recipe)]) == 2
    assert "record 1: its target 'answer' lists no answer" in " ".join(capsys.readouterr().err.split())
    assert not (recipe.parent / "out").exists()


def test_the_report_takes_scores_between_0_and_1() -> None:
    scores = {
        "weak_single": [0.2] * 10,
        "weak_ensemble": [0.4] * 10,
        "strong_on_single": [0.3] * 10,
        "strong_on_ensemble": [0.5] * 10,
        "strong_on_gold": [0.6] * 5 + [0.6, 0.7, 0.5, 0.6, 0.6],
    }
    report = w2s_report(scores)
    assert report["systems"]["strong_on_gold"]["accuracy"] == pytest.approx(0.6)
    assert report["systems"]["strong_on_gold"]["low"] < 0.6 < report["systems"]["strong_on_gold"]["high"]
    assert report["pgr"]["strong_on_ensemble"]["value"] == pytest.approx(0.75)
    assert report["paired"]["weak_ensemble vs weak_single"]["wins"] == 10


@pytest.mark.parametrize("text_side", ["weak", "strong"])
def test_a_text_stage_against_a_choices_stage_exits_2(recipe: Path, capsys: Any, text_side: str) -> None:
    other = recipe.parent / ("strong.yaml" if text_side == "weak" else "weak.yaml")
    other.write_text(
        other.read_text()
        .replace("inputs: [question]", "inputs: [question, choices]")
        .replace("    generation: {max_new_tokens: 6}\n", "    choices: '{{ choices }}'\n")
    )
    assert main(["finetune", "w2s", str(recipe)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    kinds = ["a text stage", "a choices stage"][:: 1 if text_side == "weak" else -1]
    assert f"weak.yaml is {kinds[0]} and the strong stage 'answer' of" in err
    assert f"strong.yaml is {kinds[1]}: the strong stage learns the weak labels" in err
    assert "both must pick options or both must write text" in err
    assert not (recipe.parent / "out").exists()


def test_an_unknown_metric_exits_2(recipe: Path, capsys: Any) -> None:
    recipe.write_text(recipe.read_text() + "metric: bleu\n")
    assert main(["finetune", "w2s", str(recipe)]) == 2
    assert "metric: Input should be 'choice', 'exact'" in " ".join(capsys.readouterr().err.split())
