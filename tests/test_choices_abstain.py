"""`abstain:` on a choices stage: below a probability, the stage writes a fixed answer instead of its pick
(an intent classifier's out-of-scope answer). With `search: best_first` it must abstain exactly where full
scoring does, though the search knows only a lower bound of the pick's probability."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny import make_tiny_model

from fslm.cli.main import main
from fslm.nodes.choices.show import choices_table
from fslm.pipeline import load_pipeline

PIPELINE = """models:
  m: {{source: {model}, dtype: float32}}
inputs: [text]
stages:
  label:
    model: m
    prompt: "Message: {{{{ text }}}}\\nIntent:"
    normalize: none
    search: {search}
    choices:
      card_arrival: card arrival
      card_arrival_late: card arrival late
      card_lost: card lost
      cash: cash withdrawal charge
      top_up_failed: top up failed
      top_up_limits: top up limits
      transfer: transfer timing
{abstain}"""
ITEMS = [
    {"text": "my card has not come"},
    {"text": "top up did not work"},
    {"text": "fees at the atm"},
    {"text": "where is my money"},
    {"text": "I lost it"},
    {"text": "the cat sat on the mat"},
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("abstain") / "bpe", seed=0)


def write(folder: Path, model: Path, search: str, below: float | None = None, answer: str = "oos") -> Path:
    abstain = "" if below is None else f"    abstain: {{below: {below!r}, answer: {answer}}}\n"
    path = folder / f"{search}-{below}.yaml"
    path.write_text(PIPELINE.format(model=model, search=search, abstain=abstain))
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [result.messages[0]["choices"] for result in load_pipeline(path, store=":memory:").batch(ITEMS)]


def pick_probability(record: dict[str, Any]) -> float:
    return record["probabilities"][record["chosen"]]


def test_the_stage_abstains_below_the_threshold_and_keeps_its_pick(tmp_path: Path, model: Path) -> None:
    plain = records(write(tmp_path, model, "full"))
    probabilities = sorted(pick_probability(record) for record in plain)
    below = (probabilities[2] + probabilities[3]) / 2  # half of the items under it
    pipeline = load_pipeline(write(tmp_path, model, "full", below), store=":memory:")
    results = pipeline.batch(ITEMS)
    for before, result in zip(plain, results, strict=True):
        record = result.messages[0]["choices"]
        assert record["chosen"] == before["chosen"]
        if pick_probability(before) < below:
            assert result.output == "oos"
            assert record["abstained"] == {"below": below, "answer": "oos"}
            assert any("abstained" in note for note in choices_table(record).notes)
        else:
            assert result.output == record["labels"][record["chosen"]]
            assert "abstained" not in record
    assert sum(result.output == "oos" for result in results) == 3


def test_a_best_first_stage_abstains_where_full_scoring_does(tmp_path: Path, model: Path) -> None:
    searched = records(write(tmp_path, model, "best_first"))
    full = records(write(tmp_path, model, "full"))
    # Thresholds between the search's lower bound and the exact probability can only be settled by scoring
    # every option; thresholds around the exact probabilities test the decision's edge.
    thresholds = {
        round((pick_probability(low) + pick_probability(exact)) / 2, 6)
        for low, exact in zip(searched, full, strict=True)
        if pick_probability(low) < pick_probability(exact)
    }
    assert thresholds, "the search pruned nothing: the test model no longer exercises the bounds"
    thresholds |= {round(pick_probability(exact) + delta, 6) for exact in full for delta in (-1e-4, 1e-4)}
    for below in sorted(value for value in thresholds if 0 < value < 1):
        with_search = load_pipeline(write(tmp_path, model, "best_first", below), store=":memory:")
        whole = load_pipeline(write(tmp_path, model, "full", below), store=":memory:")
        assert [r.output for r in with_search.batch(ITEMS)] == [r.output for r in whole.batch(ITEMS)], below


def test_eval_counts_an_abstention_right_when_the_reference_is_its_answer(
    tmp_path: Path, model: Path
) -> None:
    plain = records(write(tmp_path, model, "full"))
    probabilities = sorted(pick_probability(record) for record in plain)
    below = (probabilities[2] + probabilities[3]) / 2
    data = tmp_path / "dev.jsonl"
    references = ["oos", "cash", "oos", "card_lost", "oos", "top_up_failed"]  # `oos` is no label of the stage
    data.write_text(
        "".join(json.dumps({**item, "label": ref}) + "\n" for item, ref in zip(ITEMS, references))
    )
    out = tmp_path / "out.jsonl"
    path = write(tmp_path, model, "full", below)
    arguments = ["--answer-field", "label", "--output", str(out), "--store", str(tmp_path / "runs")]
    assert main(["eval", str(path), "--data", str(data), *arguments]) == 0
    rows = [json.loads(line) for line in out.read_text().split("\n") if line]
    expected = [
        ref == ("oos" if pick_probability(record) < below else record["labels"][record["chosen"]])
        for record, ref in zip(plain, references, strict=True)
    ]
    assert [row["scores"]["acc"] for row in rows] == [float(right) for right in expected]
    assert any(row["output"] == "oos" for row in rows)


@pytest.mark.parametrize(
    ("abstain", "message"),
    [
        ("{below: 1.5, answer: oos}", "less than 1"),
        ("{below: 0, answer: oos}", "greater than 0"),
        ("{below: 0.5, answer: ' '}", "the abstain answer is empty"),
        ("{below: 0.5}", "answer"),
        ("{below: 0.5, answer: oos, when: low}", "when"),
    ],
    ids=["above one", "zero", "empty answer", "no answer", "unknown key"],
)
def test_bad_abstain_settings_are_refused_before_any_model_loads(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str], abstain: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(PIPELINE.format(model=model, search="full", abstain=f"    abstain: {abstain}\n"))
    assert main(["validate", str(path)]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "abstain" in error and message in error
    assert "Traceback" not in error
