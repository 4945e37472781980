"""`fslm eval` of choice stages (acc, acc_norm with intervals, items as structured inputs), paired comparisons
of two evaluations (`--compare`), and bad choice data, on tiny models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tiny import make_tiny_model

from fslm.cli.main import main
from fslm.eval.stats import interval95, paired, sign_test
from fslm.store import open_store
from fslm.store.inspection import run_details

CHOICE_PIPELINE = """models:
  m: {{source: {model}, dtype: float32}}
  n: {{source: {other}, dtype: float32}}
inputs: [question, options]
stages:
  pick:
    {scorer}
    prompt: "Question: {{{{ question }}}}\\nAnswer:"
    choices: "{{{{ options }}}}"
    normalize: none
"""
SINGLE = "model: m"
ENSEMBLE = "ensemble: {members: [{model: m}, {model: n}], weights: [3, 1]}"
OPTIONS = [
    ["the mat", "dog slept by the door while the cat sat on the mat", "x"],
    ["four", "five hundred and twelve"],
    ["flow into the sea", "rain"],
    ["Paris", "Berlin is the capital of Germany", "water boils"],
    ["a", "the quick brown fox jumps over the lazy dog"],
    ["one short sentence", "clouds"],
]
# Gold answers as an index or as the option's text.
ANSWERS: list[int | str] = [0, "five hundred and twelve", 1, "Paris", 1, 0]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("other-model"), seed=3, sentencepiece=True)


def write_data(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def choice_data(tmp_path: Path) -> Path:
    records = [
        {"question": f"what is item {index}?", "opts": options, "label": answer}
        for index, (options, answer) in enumerate(zip(OPTIONS, ANSWERS, strict=True))
    ]
    return write_data(tmp_path / "items.jsonl", records)


def eval_args(tmp_path: Path, pipeline: Path, data: Path, *more: str) -> list[str]:
    return [
        "eval",
        str(pipeline),
        "--data",
        str(data),
        "--choices-field",
        "opts",
        "--answer-field",
        "label",
        "--store",
        str(tmp_path / "runs.sqlite"),
        *more,
    ]


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda index: (values[index], -index))


def softmax(values: list[float]) -> list[float]:
    weights = [math.exp(value - max(values)) for value in values]
    return [weight / sum(weights) for weight in weights]


def gold_index(options: list[str], answer: int | str) -> int:
    return answer if isinstance(answer, int) else options.index(answer)


@pytest.mark.parametrize("scorer", [SINGLE, ENSEMBLE])
def test_choice_eval_reports_acc_and_acc_norm_from_each_runs_option_scores(
    tmp_path: Path, tiny_model: Path, other_model: Path, scorer: str, capsys: pytest.CaptureFixture
) -> None:
    pipeline = tmp_path / "choose.yaml"
    pipeline.write_text(CHOICE_PIPELINE.format(model=tiny_model, other=other_model, scorer=scorer))
    output = tmp_path / "results.jsonl"
    assert main(eval_args(tmp_path, pipeline, choice_data(tmp_path), "--output", str(output))) == 0
    shown = capsys.readouterr().out
    assert "acc, acc_norm on 6 items" in shown
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == len(OPTIONS)
    weights = [1.0] if scorer == SINGLE else [0.75, 0.25]
    store = open_store(tmp_path / "runs.sqlite")
    for row, options, answer in zip(rows, OPTIONS, ANSWERS, strict=True):
        gold = gold_index(options, answer)
        details = run_details(store, row["run_id"])
        # The item went in whole, its options under the stage's own field name, without its answer.
        assert json.loads(details.record.input) == {"question": row["input"]["question"], "options": options}
        assert row["reference"] == options[gold]
        scorers = details.messages[-1]["choices"]["scorers"]
        sizes = [len(option.encode()) for option in options]

        def averaged(per_scorer: list[list[float]]) -> list[float]:
            probabilities = [softmax(scores) for scores in per_scorer]
            return [sum(w * p[i] for w, p in zip(weights, probabilities)) for i in range(len(per_scorer[0]))]

        sums = [scored["logprobs"] for scored in scorers]
        per_byte = [[value / size for value, size in zip(row_, sizes)] for row_ in sums]
        expected_acc = argmax(sums[0]) if scorer == SINGLE else argmax(averaged(sums))
        expected_norm = argmax(per_byte[0]) if scorer == SINGLE else argmax(averaged(per_byte))
        assert row["scores"] == {"acc": float(expected_acc == gold), "acc_norm": float(expected_norm == gold)}
        assert row["score"] == row["scores"]["acc"]
        assert row["output"] == options[expected_acc]
    for metric in ("acc", "acc_norm"):
        values = [row["scores"][metric] for row in rows]
        bounds = interval95(values)
        line = next(line for line in shown.splitlines() if f"│ {metric} " in line)
        assert f"{sum(values) / len(values):.3f}" in line
        assert f"{bounds.low:.3f}–{bounds.high:.3f} (Wilson)" in line


def test_a_choice_stage_with_its_own_options_needs_no_choices_field(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture
) -> None:
    pipeline = tmp_path / "yesno.yaml"
    pipeline.write_text(
        f"""models:
  m: {{source: {tiny_model}, dtype: float32}}
stages:
  pick: {{model: m, prompt: "{{{{ input }}}} Yes or no?", choices: ["yes", "no"]}}
"""
    )
    data = write_data(tmp_path / "items.jsonl", [{"input": "Is water wet?", "answer": "yes"}])
    args = ["eval", str(pipeline), "--data", str(data), "--store", str(tmp_path / "runs.sqlite")]
    assert main([*args, "--output", str(tmp_path / "out.jsonl")]) == 0
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["input"] == {"input": "Is water wet?"} and row["reference"] == "yes"
    assert main([*args, "--choices-field", "opts"]) == 2
    assert "lists its own options ('yes', 'no'), so it reads no --choices-field" in capsys.readouterr().err


BAD_ITEMS = [
    ({"question": "q"}, "item 2 has no options field 'opts'"),
    ({"question": "q", "opts": "a, b"}, "item 2: its options field 'opts' is str, not a list of texts"),
    ({"question": "q", "opts": []}, "item 2: its options field 'opts' holds no options"),
    ({"question": "q", "opts": ["only"]}, "item 2: its options field 'opts' holds one option ('only')"),
    ({"question": "q", "opts": ["same", "same"]}, "holds one option ('same'); a choice needs at least two"),
    ({"question": "q", "opts": ["a", 3]}, "item 2: option 1 of its options field 'opts' is int, not text"),
    ({"question": "q", "opts": ["a", ""]}, "item 2: option 1 of its options field 'opts' is empty"),
    ({"question": "q", "opts": ["a", "b"], "label": "c"}, "item 2: answer 'c' (field 'label') is not among"),
    (
        {"question": "q", "opts": ["a", "b"], "label": 2},
        "item 2: answer 2 (field 'label') is not an option's",
    ),
    (
        {"question": "q", "opts": ["a", "b"], "label": True},
        "item 2: answer True (field 'label') is not among",
    ),
    ({"question": "q", "opts": ["a", "b"], "label": None}, "item 2 has no answer field 'label'"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ITEMS)
def test_bad_choice_items_are_exit_2_naming_the_item_and_field(
    tmp_path: Path, tiny_model: Path, bad: dict, message: str, capsys: pytest.CaptureFixture
) -> None:
    pipeline = tmp_path / "choose.yaml"
    pipeline.write_text(CHOICE_PIPELINE.format(model=tiny_model, other=tiny_model, scorer=SINGLE))
    good = {"question": "q", "opts": ["a", "b"], "label": 0}
    data = write_data(tmp_path / "items.jsonl", [good, {"label": 1, **bad}])
    assert main(eval_args(tmp_path, pipeline, data)) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert "items.jsonl, item 2" in " ".join(err.split())
    assert not (tmp_path / "runs.sqlite").exists()  # nothing ran


def test_a_generating_pipeline_still_needs_a_metric(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture
) -> None:
    pipeline = tmp_path / "gen.yaml"
    pipeline.write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\n"
        'stages:\n  say: {model: m, prompt: "{{ input }}", generation: {max_new_tokens: 2}}\n'
    )
    data = write_data(tmp_path / "items.jsonl", [{"input": "hi", "answer": "yes"}])
    assert main(["eval", str(pipeline), "--data", str(data)]) == 2
    assert "does not end in a choice stage, so give a --metric" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_two_choice_pipelines_pairs_every_metric(
    tmp_path: Path, tiny_model: Path, other_model: Path, capsys: pytest.CaptureFixture
) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(CHOICE_PIPELINE.format(model=tiny_model, other=other_model, scorer=SINGLE))
    second.write_text(CHOICE_PIPELINE.format(model=tiny_model, other=other_model, scorer=ENSEMBLE))
    output = tmp_path / "both.jsonl"
    data = choice_data(tmp_path)
    assert main(eval_args(tmp_path, first, data, "--compare", str(second), "--output", str(output))) == 0
    shown = capsys.readouterr().out
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    ours, theirs = rows[: len(OPTIONS)], rows[len(OPTIONS) :]
    assert {row["name"] for row in ours} == {"first"} and {row["name"] for row in theirs} == {"second"}
    paired_part = shown.split("item by item")[1]
    for metric in ("acc", "acc_norm"):
        result = paired([row["scores"][metric] for row in ours], [row["scores"][metric] for row in theirs])
        line = next(line for line in paired_part.splitlines() if line.startswith(f"│ {metric} "))
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        assert cells[3:] == [str(result.wins), str(result.losses), str(result.ties), f"{result.p_value:.3g}"]
    assert "first against second, item by item" in shown
    # The same comparison from the results file alone: it holds both pipelines.
    assert main(["eval", "--compare", str(output)]) == 0
    again = capsys.readouterr().out
    assert again.split("item by item")[1] == shown.split("item by item")[1]
    # A pipeline run now against an earlier results file: the second against the first's rows.
    earlier = write_data(tmp_path / "first.jsonl", ours)
    rerun = eval_args(
        tmp_path, second, data, "--compare", str(earlier), "--output", str(tmp_path / "s.jsonl")
    )
    assert main(rerun) == 0
    reversed_part = capsys.readouterr().out.split("item by item")[1]
    for metric in ("acc", "acc_norm"):
        result = paired([row["scores"][metric] for row in theirs], [row["scores"][metric] for row in ours])
        line = next(line for line in reversed_part.splitlines() if line.startswith(f"│ {metric} "))
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        assert cells[3:5] == [str(result.wins), str(result.losses)]
    assert main(eval_args(tmp_path, second, data, "--compare", str(output))) == 2
    assert "these arguments give 3" in capsys.readouterr().err


def test_compare_two_results_files_for_any_metric(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def results(path: Path, name: str, scores: list[float]) -> Path:
        rows = [
            {
                "pipeline": f"/p/{name}.yaml",
                "name": name,
                "metric": "f1",
                "run_id": f"{name}-{index}",
                "input": f"q{index}",
                "reference": f"r{index}",
                "output": "o",
                "extracted": "o",
                "score": value,
                "scores": {"f1": value},
            }
            for index, value in enumerate(scores)
        ]
        return write_data(path, rows)

    a = results(tmp_path / "a.jsonl", "a", [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.2])
    b = results(tmp_path / "b.jsonl", "b", [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.4])
    assert main(["eval", "--compare", str(a), str(b)]) == 0
    shown = capsys.readouterr().out
    paired_row = [cell.strip() for cell in shown.split("item by item")[1].split("│ f1")[1].split("│")]
    # Five wins, one loss, one tie: two-sided exact sign test p = 2 * (1 + 6) / 2**6.
    assert paired_row[3:7] == ["5", "1", "1", f"{2 * 7 / 64:.3g}"]
    assert "(normal)" in shown  # scores between 0 and 1 get the normal interval
    c = results(tmp_path / "c.jsonl", "c", [0.0] * 6)
    assert main(["eval", "--compare", str(a), str(c)]) == 2
    assert "scored on 7 items and 'c' on 6" in capsys.readouterr().err
    (tmp_path / "junk.jsonl").write_text('{"x": 1}\n')
    assert main(["eval", "--compare", str(a), str(tmp_path / "junk.jsonl")]) == 2
    assert "is not a row written by `fslm eval --output`" in capsys.readouterr().err
    assert main(["eval", "--compare", str(a)]) == 2
    assert "--compare compares two evaluations; these arguments give 1" in capsys.readouterr().err


def test_the_statistics() -> None:
    assert sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    wilson = interval95([1.0] * 8 + [0.0] * 2)
    assert (wilson.method, round(wilson.low, 4), round(wilson.high, 4)) == ("Wilson", 0.4902, 0.9433)
    assert interval95([1.0] * 5).high == 1.0
    normal = interval95([0.5, 0.7, 0.9])
    assert normal.method == "normal" and normal.low == pytest.approx(0.7 - 1.959964 * 0.2 / math.sqrt(3))
    result = paired([1, 0, 1, 0.5], [0, 0, 0, 0.7])
    assert (result.wins, result.losses, result.ties) == (2, 1, 1)
