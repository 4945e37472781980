"""`fslm eval` on the tiny model: every item scored and recorded as a run, two pipelines side by side."""

import json

from fslm.cli.main import main
from fslm.store import open_store
from fslm.store.inspection import run_details

PIPELINE = """models:
  m: {{source: {model}, dtype: float32}}
stages:
  first: {{model: m, prompt: "{prefix} {{{{ input }}}}", generation: {{max_new_tokens: 5}}}}
"""


def test_eval_scores_every_item_records_runs_and_compares(tmp_path, tiny_model, capsys):
    for name, prefix in (("a", "one"), ("b", "two")):
        (tmp_path / f"{name}.yaml").write_text(PIPELINE.format(model=tiny_model, prefix=prefix))
    data = tmp_path / "items.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"the cat {i}", "gold": ["x", str(i)]}) + "\n" for i in range(5))
    )
    output = tmp_path / "results.jsonl"
    store = tmp_path / "runs.sqlite"
    code = main(
        [
            "eval",
            str(tmp_path / "a.yaml"),
            "--data",
            str(data),
            "--metric",
            "f1",
            "--field",
            "question",
            "--answer-field",
            "gold",
            "--compare",
            str(tmp_path / "b.yaml"),
            "--output",
            str(output),
            "--store",
            str(store),
        ]
    )
    assert code == 0
    shown = capsys.readouterr().out
    assert "f1 on 5 items" in shown
    summary, comparison = shown.split("item by item")
    assert [line.split()[1:4:2] for line in summary.splitlines() if line.startswith("│")] == [
        ["a", "f1"],
        ["b", "f1"],
    ]
    assert "a against b" in summary and "p (exact sign test)" in comparison
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["pipeline"].rsplit("/", 1)[-1] for row in rows] == ["a.yaml"] * 5 + ["b.yaml"] * 5
    assert [row["input"] for row in rows[:5]] == [f"the cat {i}" for i in range(5)]
    details = run_details(open_store(store), rows[6]["run_id"])
    assert details.record.input == "the cat 1"
    assert details.messages[0]["prompt"] == "two the cat 1"
    assert details.messages[0]["text"] == rows[6]["output"]
    assert all(0.0 <= row["score"] <= 1.0 and row["scores"] == {"f1": row["score"]} for row in rows)


def test_eval_data_without_the_fields_is_refused(tmp_path, tiny_model, capsys):
    (tmp_path / "a.yaml").write_text(PIPELINE.format(model=tiny_model, prefix="one"))
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"question": "q", "gold": "g"}) + "\n")
    assert main(["eval", str(tmp_path / "a.yaml"), "--data", str(data), "--metric", "exact"]) == 2
    assert "no field 'input', 'answer'; fields available: question, gold" in capsys.readouterr().err


def test_eval_numbers_below_one_are_exit_2(tmp_path, tiny_model, capsys):
    (tmp_path / "a.yaml").write_text(PIPELINE.format(model=tiny_model, prefix="one"))
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"input": "q", "answer": "g"}) + "\n")
    for flag in ("--limit", "--batch-size"):
        args = ["eval", str(tmp_path / "a.yaml"), "--data", str(data), "--metric", "exact", flag, "0"]
        assert main([*args, "--store", str(tmp_path / "runs.sqlite")]) == 2
        assert f"{flag} must be at least 1" in capsys.readouterr().err
