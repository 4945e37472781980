"""The `cascade` node kind: a confident first stage answers and the later ones never run, an unsure one
escalates, the record's table in `runs show` and the viewer, `fslm eval` scoring the answering stage with a
breakdown by it, every kind of bad YAML, and `fslm finetune cascade` picking thresholds on dev items."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from tiny import make_tiny_adapter, make_tiny_model

from fslm.cli.cascade_cmd import register_workflow
from fslm.cli.main import main
from fslm.finetune.cascade.thresholds import (
    ASSURANCE,
    StepResult,
    for_budget,
    for_quality,
    holding_shares,
    operating_point,
    sweep,
)
from fslm.pipeline import load_pipeline

QUESTIONS = [
    "what is two plus two",
    "where do rivers flow",
    "when does water boil",
    "who sat on the mat",
    "why do dogs sleep",
    "how big is paris",
    "which city is in germany",
    "what falls from the clouds",
]
CHOICES = ["yes", "no", "maybe"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cascade")
    model = make_tiny_model(root / "lm", seed=0)
    data = root / "dev.jsonl"
    records = [
        {"question": question, "choices": CHOICES, "gold": CHOICES[index % 3]}
        for index, question in enumerate(QUESTIONS)
    ]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    return {
        "root": root,
        "lm": model,
        "adapter": make_tiny_adapter(model, root / "adapter", seed=1),
        "data": data,
    }


def pipeline_text(world: dict[str, Path], cascade: str, big_choices: str = '"{{ choices }}"') -> str:
    return f"""
models: {{tiny: {{source: {world["lm"]}, dtype: float32}}}}
inputs: [question, choices]
stages:
  answer:
    cascade: {{{cascade}}}
  small: {{model: tiny, prompt: "Q: {{{{ question }}}}", choices: "{{{{ choices }}}}"}}
  big:
    model: tiny
    adapter: {world["adapter"]}
    prompt: "Q: {{{{ question }}}}"
    choices: {big_choices}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_all(path: Path) -> list[Any]:
    pipeline = load_pipeline(path, store=":memory:")
    try:
        return pipeline.batch([{"question": question, "choices": CHOICES} for question in QUESTIONS])
    finally:
        pipeline.close()


def picked_probability(message: dict) -> float:
    record = message["choices"]
    return record["probabilities"][record["chosen"]]


def test_a_confident_first_stage_answers_and_the_next_never_runs(
    world: dict[str, Path], tmp_path: Path
) -> None:
    path = write(tmp_path / "p.yaml", pipeline_text(world, "stages: [small, big], thresholds: [0.0]"))
    for result in run_all(path):
        assert [message["stage"] for message in result.messages] == ["small", "answer"]
        small, own = result.messages
        record = own["cascade"]
        assert record["answered"] == "small" and record["stages"] == ["small", "big"]
        assert [step["stage"] for step in record["steps"]] == ["small"]
        assert record["steps"][0]["confidence"] == picked_probability(small)
        assert record["steps"][0]["threshold"] == 0.0 and record["steps"][0]["seconds"] > 0
        assert result.output == small["text"] == own["text"]


def test_an_unsure_first_stage_escalates(world: dict[str, Path], tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", pipeline_text(world, "stages: [small, big], thresholds: [1.0]"))
    for result in run_all(path):
        assert [message["stage"] for message in result.messages] == ["small", "big", "answer"]
        small, big, own = result.messages
        steps = own["cascade"]["steps"]
        assert own["cascade"]["answered"] == "big"
        assert [step["threshold"] for step in steps] == [1.0, None]
        assert [step["confidence"] for step in steps] == [picked_probability(small), picked_probability(big)]
        assert result.output == big["text"] == own["text"] and own["adapter"] == big["adapter"]


def test_the_margin_is_the_picked_probability_less_the_runner_up(
    world: dict[str, Path], tmp_path: Path
) -> None:
    path = write(
        tmp_path / "p.yaml",
        pipeline_text(world, "stages: [small, big], confidence: margin, thresholds: [1.0]"),
    )
    for result in run_all(path):
        small = result.messages[0]
        top, second = sorted(small["choices"]["probabilities"], reverse=True)[:2]
        assert result.messages[-1]["cascade"]["steps"][0]["confidence"] == pytest.approx(top - second)


@pytest.mark.slow
def test_the_stage_that_answers_depends_on_its_confidence(world: dict[str, Path], tmp_path: Path) -> None:
    threshold = median_confidence(world, tmp_path)
    path = write(
        tmp_path / "mid.yaml", pipeline_text(world, f"stages: [small, big], thresholds: [{threshold}]")
    )
    answered = []
    for result in run_all(path):
        confident = picked_probability(result.messages[0]) >= threshold
        answered.append(result.messages[-1]["cascade"]["answered"])
        assert answered[-1] == ("small" if confident else "big")
        assert ("big" in [message["stage"] for message in result.messages]) == (not confident)
    assert set(answered) == {"small", "big"}


def median_confidence(world: dict[str, Path], tmp_path: Path) -> float:
    """A threshold between the small stage's confidences, so that some items escalate and some do not."""
    path = write(tmp_path / "all.yaml", pipeline_text(world, "stages: [small, big], thresholds: [1.0]"))
    confidences = sorted(picked_probability(result.messages[0]) for result in run_all(path))
    middle = len(confidences) // 2
    return (confidences[middle - 1] + confidences[middle]) / 2


def test_runs_show_displays_each_step_and_where_it_stopped(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    path = write(tmp_path / "p.yaml", pipeline_text(world, "stages: [small, big], thresholds: [0.0]"))
    store = str(tmp_path / "runs.sqlite")
    run_input = json.dumps({"question": "how big is paris", "choices": CHOICES})
    assert main(["run", str(path), "--input-json", run_input, "--json", "--store", store]) == 0
    run = json.loads(capsys.readouterr().out)
    assert main(["runs", "show", run["run_id"], "--store", store]) == 0
    shown = capsys.readouterr().out
    assert "cascade: small answered at step 1 of 2 · 1 stage(s) run · " in shown
    answered = next(line for line in shown.splitlines() if "✓" in line and "small" in line)
    confidence = run["messages"][-1]["cascade"]["steps"][0]["confidence"]
    assert f"{confidence:.3f}" in answered and "0.000" in answered
    assert [line for line in shown.splitlines() if "big" in line and "not run" in line]


def test_the_viewer_shows_each_step(
    world: dict[str, Path], tmp_path: Path, capsys: Any, browser: Any
) -> None:
    from fslm.store import open_store
    from fslm.ui import make_server, serving
    from fslm.ui.browser import open_view, text_of

    path = write(tmp_path / "p.yaml", pipeline_text(world, "stages: [small, big], thresholds: [1.0]"))
    store = tmp_path / "runs.sqlite"
    run_input = json.dumps({"question": "how big is paris", "choices": CHOICES})
    assert main(["run", str(path), "--input-json", run_input, "--json", "--store", str(store)]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    with serving(make_server(open_store(store, read_only=True), port=0)) as running:
        open_view(browser, f"{running.url}#/run/{run_id}")
        card = "li.message[data-stage='answer']"
        assert text_of(browser, f"{card} .record-head")[0].startswith(
            "cascade: big answered at step 2 of 2 · 2 stage(s) run · "
        )
        assert text_of(browser, f"{card} td.text:nth-child(3)") == ["small", "big"]
        assert text_of(browser, f"{card} tr.chosen td.text:nth-child(3)") == ["big"]


@pytest.mark.parametrize(
    ("cascade", "message"),
    [
        ("stages: [small, big], thresholds: [0.5, 0.5]", "'thresholds' has 2 value(s) for 2 stages"),
        ("stages: [small, big], thresholds: []", "'thresholds' has 0 value(s) for 2 stages"),
        ("stages: [small, big], thresholds: [1.5]", "threshold 1 is 1.5; a probability lies in [0, 1]"),
        ("stages: [small], thresholds: []", "stages"),
        ("stages: [small, small], thresholds: [0.5]", "stages are listed twice: 'small'"),
        (
            "stages: [small, bgi], thresholds: [0.5]",
            "'bgi' is not a stage of the pipeline; did you mean 'big'",
        ),
        ("stages: [small, answer], thresholds: [0.5]", "stage 'answer' lists itself among its stages"),
        ("stages: [small, big], confidence: entropy, thresholds: [0.5]", "'mean_logprob' or 'min_logprob'"),
        (
            "stages: [small, big], confidence: mean_logprob, thresholds: [0.5]",
            "threshold 1 is 0.5; a mean_logprob is a log-probability, at most 0",
        ),
        (
            "stages: [small, big], confidence: min_logprob, thresholds: [-0.5]",
            "'small' is a 'choices' stage; confidence 'min_logprob' is the log-probability of generated",
        ),
    ],
)
def test_validate_refuses(
    world: dict[str, Path], tmp_path: Path, capsys: Any, cascade: str, message: str
) -> None:
    assert main(["validate", str(write(tmp_path / "p.yaml", pipeline_text(world, cascade)))]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_validate_refuses_stages_that_pick_among_other_options(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    text = pipeline_text(world, "stages: [small, big], thresholds: [0.5]", big_choices='["yes", "no"]')
    assert main(["validate", str(write(tmp_path / "p.yaml", text))]) == 2
    assert "its stages must pick among the same options" in capsys.readouterr().err.replace("\n", " ")


def test_validate_refuses_a_generating_stage_and_a_prompt_of_its_own(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    text = pipeline_text(world, "stages: [small, writer], thresholds: [0.5]").replace(
        "    cascade:", '    prompt: "{{ question }}"\n    cascade:'
    )
    text += '  writer: {model: tiny, prompt: "Q: {{ question }}"}\n'
    assert main(["validate", str(write(tmp_path / "p.yaml", text))]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "a cascade has no 'prompt' of its own" in err
    assert "'writer' is a 'stage' stage; confidence 'probability' is a pick's" in err


@pytest.mark.slow
def test_fslm_eval_scores_the_answering_stage_and_breaks_scores_down_by_it(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    from fslm.eval.compare import read_reports
    from fslm.eval.routing import by_chosen_expert
    from fslm.store import open_store
    from fslm.store.inspection import run_details

    threshold = median_confidence(world, tmp_path)
    pipeline = write(
        tmp_path / "p.yaml", pipeline_text(world, f"stages: [small, big], thresholds: [{threshold}]")
    )
    output = tmp_path / "results.jsonl"
    store = str(tmp_path / "runs.sqlite")
    args = ["eval", str(pipeline), "--data", str(world["data"]), "--answer-field", "gold", "--store", store]
    assert main([*args, "--output", str(output)]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == len(QUESTIONS) and list(rows[0]["scores"]) == ["acc", "acc_norm"]
    for row in rows:
        messages = run_details(open_store(store, read_only=True), row["run_id"]).messages
        answered = messages[-1]["cascade"]["answered"]
        assert row["routed"] == {"answer": answered}
        record = next(message["choices"] for message in messages if message["stage"] == answered)
        assert row["scores"]["acc"] == float(record["options"][record["chosen"]] == row["reference"])
    breakdown = {(row.expert, row.metric): row for row in by_chosen_expert(read_reports(output)[0])}
    for stage in ("small", "big"):
        mine = [row["scores"]["acc"] for row in rows if row["routed"]["answer"] == stage]
        assert breakdown[stage, "acc"].items == len(mine) > 0
        assert breakdown[stage, "acc"].mean == sum(mine) / len(mine)


def synthetic() -> list[list[StepResult]]:
    """Ten items: the small stage is right when it is sure (confidence ≥ 0.8), the big one always."""
    return [
        [StepResult(confidence, confidence >= 0.8, 1.0), StepResult(0.9, True, 4.0)]
        for confidence in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.55, 0.5, 0.45)
    ]


def test_operating_points_count_only_the_stages_that_ran() -> None:
    def numbers(threshold: float) -> tuple[float, float, float]:
        point = operating_point(synthetic(), [threshold])
        return point.accuracy, point.escalated, point.seconds

    assert numbers(0.0) == pytest.approx((0.4, 0.0, 1.0))
    assert numbers(1.0) == pytest.approx((1.0, 1.0, 5.0))
    assert numbers(0.8) == pytest.approx((1.0, 0.6, 1.0 + 0.6 * 4.0))


def test_calibration_keeps_the_quality_or_the_budget_asked_for() -> None:
    items = synthetic()
    points = sweep(items)
    # Between 0.75 and 0.8: no loss, fewest calls.
    assert for_quality(items, points, 0.0).thresholds == (0.775,)
    # One mistake in ten allowed: on these ten items one call fewer keeps it, but not with assurance.
    assert for_quality(items, points, 0.1, assurance=0).thresholds == (0.725,)
    assert for_quality(items, points, 0.1).thresholds == (0.775,)
    assert for_budget(points, 0.6).thresholds == (0.775,)
    assert for_budget(points, 0.3).thresholds == (0.575,)  # escalates the three least sure


def test_the_assurance_flag_states_the_default_the_search_uses() -> None:
    # The CLI keeps the number in its help text so that `fslm validate` starts without torch.
    parser = argparse.ArgumentParser()
    register_workflow(parser)
    (flag,) = [action for action in parser._actions if action.dest == "assurance"]
    assert flag.default is None
    assert f"default {ASSURANCE};" in str(flag.help)


def test_holding_shares_are_bootstrap_frequencies() -> None:
    items = synthetic()
    points = sweep(items)
    thresholds = [point.thresholds[0] for point in points]
    shares = dict(zip(thresholds, holding_shares(items, points, 0.1), strict=True))
    assert shares[0.775] == shares[1.0] == 1.0  # every item the small stage gets wrong is escalated
    # At 0.725 one wrong item answers: drawn at most once in ten, P(Binomial(10, 0.1) <= 1) = 0.736.
    assert shares[0.725] == pytest.approx(0.736, abs=0.04)
    # At 0.65 two wrong items answer: at most one draw of either, P(Binomial(10, 0.2) <= 1) = 0.376.
    assert shares[0.65] == pytest.approx(0.376, abs=0.04)
    assert holding_shares(items, points, 0.1) == list(shares.values())  # seeded: the same every time


@pytest.mark.slow
def test_finetune_cascade_picks_and_writes_thresholds(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    text = "# a comment that survives\n" + pipeline_text(world, "stages: [small, big], thresholds: [0.5]")
    pipeline = write(tmp_path / "p.yaml", text)
    store = str(tmp_path / "runs.sqlite")
    args = ["finetune", "cascade", str(pipeline), "--stage", "answer", "--data", str(world["data"])]
    args += ["--answer-field", "gold", "--store", store]
    assert main([*args, "--budget", "0.5"]) == 0
    assert "(--write writes them into the pipeline)" in capsys.readouterr().err
    assert pipeline.read_text() == text  # printed, not written
    assert main([*args, "--target-quality", "0", "--write"]) == 0
    captured = capsys.readouterr()
    assert "written to stage answer" in captured.err
    written = pipeline.read_text()
    assert written.startswith("# a comment that survives")
    threshold = float(written.split("thresholds: [")[1].split("]")[0])
    # No loss against the big stage alone: the printed cascade row matches its accuracy.
    rows = {line.split("│")[1].strip(): line for line in captured.out.splitlines() if "│" in line}
    big_accuracy = rows["big alone"].split("│")[2].strip()
    cascade = next(line for title, line in rows.items() if title.startswith("cascade at"))
    assert float(cascade.split("│")[2]) >= float(big_accuracy)
    assert f"[{threshold:g}]" in cascade


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "1.5"], "--budget is a share of the items, from 0 to 1"),
        (["--target-quality", "-0.1"], "--target-quality is a fraction of accuracy"),
        (["--target-quality", "0.01", "--assurance", "1"], "--assurance is a share of bootstrap resamples"),
        (["--budget", "0.3", "--assurance", "0.5"], "--assurance goes with --target-quality"),
        (
            ["--budget", "0.3", "--stage", "small"],
            "has no cascade stage 'small' (its cascade stages: answer)",
        ),
        (["--budget", "0.3", "--metric", "exact"], "--metric scores written text, but the stages of cascade"),
    ],
)
def test_finetune_cascade_refuses(
    world: dict[str, Path], tmp_path: Path, capsys: Any, extra: list[str], message: str
) -> None:
    pipeline = write(tmp_path / "p.yaml", pipeline_text(world, "stages: [small, big], thresholds: [0.5]"))
    args = ["finetune", "cascade", str(pipeline), "--stage", "answer", "--data", str(world["data"])]
    assert main([*args, "--answer-field", "gold", *extra]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def writing_pipeline(world: dict[str, Path], cascade: str) -> str:
    """A cascade of two generating stages: the tiny model, then the tiny model with an adapter."""
    return f"""
models: {{tiny: {{source: {world["lm"]}, dtype: float32}}}}
inputs: [question, choices]
stages:
  answer:
    cascade: {{{cascade}}}
  small:
    model: tiny
    prompt: "Q: {{{{ question }}}}"
    generation: {{max_new_tokens: 4}}
  big:
    model: tiny
    adapter: {world["adapter"]}
    prompt: "Q: {{{{ question }}}}"
    generation: {{max_new_tokens: 4}}
"""


@pytest.mark.parametrize("measure", ["mean_logprob", "min_logprob"])
def test_a_cascade_of_generating_stages_reads_their_token_logprobs(
    world: dict[str, Path], tmp_path: Path, measure: str
) -> None:
    key = {"mean_logprob": "mean", "min_logprob": "min"}[measure]
    first = run_all(
        write(
            tmp_path / "a.yaml",
            writing_pipeline(world, f"stages: [small, big], confidence: {measure}, thresholds: [-1000]"),
        )
    )
    for result in first:
        small, own = result.messages
        assert (
            own["cascade"]["answered"] == "small"
            and small["logprobs"]["tokens"] == small["completion_tokens"]
        )
        assert own["cascade"]["steps"][0]["confidence"] == small["logprobs"][key] <= 0
    # A threshold between the small stage's confidences: the unsure half escalates, and only it.
    confidences = sorted(result.messages[0]["logprobs"][key] for result in first)
    threshold = (confidences[3] + confidences[4]) / 2
    path = write(
        tmp_path / "b.yaml",
        writing_pipeline(world, f"stages: [small, big], confidence: {measure}, thresholds: [{threshold}]"),
    )
    for result in run_all(path):
        sure = result.messages[0]["logprobs"][key] >= threshold
        assert result.messages[-1]["cascade"]["answered"] == ("small" if sure else "big")
        assert result.output == result.messages[-2]["text"]


@pytest.mark.slow
def test_finetune_cascade_fits_a_log_probability_threshold_and_eval_scores_the_text(
    world: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    pipeline = write(
        tmp_path / "p.yaml",
        writing_pipeline(world, "stages: [small, big], confidence: mean_logprob, thresholds: [-1]"),
    )
    big = run_all(
        write(
            tmp_path / "big.yaml",
            writing_pipeline(world, "stages: [big, small], confidence: mean_logprob, thresholds: [-1000]"),
        )
    )
    data = tmp_path / "dev.jsonl"  # gold: the big stage's answer on half of the items, nonsense on the rest
    data.write_text(
        "".join(
            json.dumps(
                {"question": question, "choices": CHOICES, "gold": result.output if index % 2 else "zzz"}
            )
            + "\n"
            for index, (question, result) in enumerate(zip(QUESTIONS, big, strict=True))
        )
    )
    store = str(tmp_path / "runs.sqlite")
    args = [
        "finetune",
        "cascade",
        str(pipeline),
        "--stage",
        "answer",
        "--data",
        str(data),
        "--answer-field",
        "gold",
    ]
    assert main([*args, "--store", store, "--metric", "exact", "--target-quality", "0", "--write"]) == 0
    captured = capsys.readouterr()
    threshold = float(pipeline.read_text().split("thresholds: [")[1].split("]")[0])
    assert threshold <= 0 and "written to stage answer" in captured.err
    rows = {line.split("│")[1].strip(): line for line in captured.out.splitlines() if "│" in line}
    assert float(rows["big alone"].split("│")[2]) == 0.5
    cascade = next(line for title, line in rows.items() if title.startswith("cascade at"))
    assert float(cascade.split("│")[2]) >= 0.5
    output = tmp_path / "results.jsonl"
    eval_args = ["eval", str(pipeline), "--data", str(data), "--answer-field", "gold", "--metric", "exact"]
    assert main([*eval_args, "--store", store, "--output", str(output)]) == 0
    scored = [json.loads(line) for line in output.read_text().splitlines()]
    assert sum(row["scores"]["exact"] for row in scored) / len(scored) >= 0.5
    assert {row["routed"]["answer"] for row in scored} <= {"small", "big"}


def test_log_probability_thresholds_span_the_measures_range() -> None:
    from fslm.finetune.cascade.thresholds import candidate_thresholds

    items = [
        [StepResult(-2.3, True, 1.0), StepResult(-0.1, True, 1.0)],
        [StepResult(-0.5, False, 1.0), StepResult(-0.2, True, 1.0)],
    ]
    assert candidate_thresholds(items, logprob=True) == [-3.0, -1.4, 0.0]
    assert operating_point(items, [-3.0]).escalated == 0.0  # the floor lets every first step answer
    assert operating_point(items, [0.0]).escalated == 1.0
