"""Choosing ensemble members (Determine-Then-Ensemble rules) and `fslm ensemble check` on tiny models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny import make_tiny_model

from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.eval.ensemble_check import candidate_models, measure_candidates, parse_candidates, render_prompts
from fslm.eval.ensemble_determine import CandidateResult, recommend
from fslm.eval.items import EvalItem
from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.spec import load_spec

ANSWER = GenerationParams(max_new_tokens=4, stop=("\n",))
QUESTIONS = ["The cat sat on the", "Rivers flow into the", "Paris is the capital of", "Water boils at"]


def candidate(
    name: str, score: float, chars: float = 10.0, vocabulary: tuple[bytes, ...] = (b"a",)
) -> CandidateResult:
    return CandidateResult(name, score, chars, frozenset(vocabulary))


def test_the_best_starts_and_members_within_gap_and_length_join_best_first() -> None:
    result = recommend([candidate("weak", 0.40), candidate("near", 0.55, 15), candidate("best", 0.60, 10)])
    assert [verdict.candidate.name for verdict in result.verdicts] == ["best", "near", "weak"]
    assert result.members == ["best", "near"]
    near = result.verdicts[1]
    assert near.gap == pytest.approx(0.05) and near.length_ratio == pytest.approx(1.5)
    assert "20.0 points behind best" in result.verdicts[2].reason
    assert result.summary().startswith("Ensemble best + near")


@pytest.mark.parametrize(("chars", "chosen"), [(20.0, True), (20.5, False), (5.0, True), (4.9, False)])
def test_answers_more_than_twice_as_long_or_short_as_the_best_are_left_out(
    chars: float, chosen: bool
) -> None:
    result = recommend([candidate("best", 0.5, 10), candidate("other", 0.5, chars)])
    assert result.verdicts[1].chosen is chosen
    assert (result.members == ["best", "other"]) is chosen


def test_a_gap_of_exactly_ten_points_is_allowed_and_more_is_not() -> None:
    assert recommend([candidate("a", 0.7), candidate("b", 0.6)]).members == ["a", "b"]
    alone = recommend([candidate("a", 0.7), candidate("b", 0.59)])
    assert alone.members == ["a"]
    assert alone.summary().startswith("Use a alone")
    assert recommend([candidate("a", 0.7), candidate("b", 0.59)], max_gap=0.2).members == ["a", "b"]


def test_a_tie_goes_to_the_first_candidate_and_overlap_is_by_token_text() -> None:
    result = recommend(
        [candidate("x", 0.3, vocabulary=(b"a", b"b", b"c")), candidate("y", 0.3, vocabulary=(b"b",))]
    )
    assert result.best.name == "x"
    assert result.verdicts[1].vocabulary_overlap == pytest.approx(1 / 3)


def test_no_signal_is_said_when_every_score_is_zero() -> None:
    assert "say nothing" in recommend([candidate("a", 0.0), candidate("b", 0.0)]).summary()


@pytest.mark.parametrize(
    ("members", "message"), [("a", "at least two"), ("a, ,", "at least two"), ("a,b,a", "more than once")]
)
def test_member_lists_that_cannot_be_compared_are_refused(members: str, message: str) -> None:
    with pytest.raises(FslmError, match=message):
        parse_candidates(members)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("determine-models")
    return {
        "bpe": make_tiny_model(root / "bpe", seed=0),
        "sp": make_tiny_model(root / "sp", seed=2, sentencepiece=True),
    }


@pytest.fixture(scope="module")
def runtime(models: dict[str, Path]) -> Iterator[Runtime]:
    with Runtime({name: ModelRef(str(path), "float32") for name, path in models.items()}) as runtime:
        yield runtime


def answers_of(runtime: Runtime, handle: str) -> list[str]:
    requests = [
        GenerationRequest(handle, f"Question: {q}\nAnswer:", chat_template=False, params=ANSWER)
        for q in QUESTIONS
    ]
    return [generation.text for generation in runtime.generate(requests)]


def test_measured_score_length_and_vocabulary_come_from_each_candidates_answers(runtime: Runtime) -> None:
    own = answers_of(runtime, "bpe")
    # bpe's own answers are the references of the first two items; the last two cannot be matched.
    items = [
        EvalItem(q, answer if i < 2 else "\u2603 never said")
        for i, (q, answer) in enumerate(zip(QUESTIONS, own))
    ]
    prompts = render_prompts("Question: {{ input }}\nAnswer:", items)
    bpe, sp = measure_candidates(runtime, ["bpe", "sp"], items, "exact", prompts, ANSWER)
    assert bpe.score == pytest.approx(0.5)
    assert bpe.answer_chars == pytest.approx(sum(map(len, own)) / len(own))
    assert sp.answer_chars == pytest.approx(sum(map(len, answers_of(runtime, "sp"))) / len(own))
    overlap = recommend([bpe, sp]).verdicts[1].vocabulary_overlap
    assert 0 < overlap < 1  # byte-level BPE and sentencepiece share some token texts, not all


def test_pipeline_handles_are_candidates_and_an_unknown_one_names_the_closest(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"models:\n  smol: {{source: {models['bpe']}, dtype: float32}}\n  gemma: {{source: {models['sp']}}}\n"
        "stages:\n  s: {model: smol, prompt: '{{ input }}'}\n"
    )
    spec = load_spec(pipeline)
    assert candidate_models(["smol", "gemma"], spec, "auto") == {
        "smol": ModelRef(str(models["bpe"]), "float32"),
        "gemma": ModelRef(str(models["sp"]), "auto"),
    }
    with pytest.raises(FslmError, match="did you mean 'gemma'"):
        candidate_models(["smol", "gema"], spec, "auto")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_check_recommends_the_best_alone_when_the_other_is_far_behind(
    tmp_path: Path, runtime: Runtime, models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(
        tmp_path / "dev.jsonl", [{"q": q, "a": a} for q, a in zip(QUESTIONS, answers_of(runtime, "sp"))]
    )
    code = main(
        [
            "ensemble",
            "check",
            "--members",
            f"{models['bpe']},{models['sp']}",
            "--data",
            str(data),
            "--metric",
            "exact",
            "--field",
            "q",
            "--answer-field",
            "a",
            "--max-new-tokens",
            "4",
            "--dtype",
            "float32",
        ]
    )
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "exact on 4 items" in shown
    assert f"Use {models['sp']} alone" in shown


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"input": "x", "answer": "y"}], ["--members", "{bpe}"], "at least two candidates"),
        (
            [{"input": "x", "answer": "y"}],
            ["--members", "{bpe},./no-such-model"],
            "Candidate './no-such-model'",
        ),
        ([{"question": "x", "gold": "y"}], ["--members", "{bpe},{sp}"], "fields available: question, gold"),
        ([], ["--members", "{bpe},{sp}"], "holds no items"),
        (
            [{"input": "x", "answer": "y"}],
            ["--members", "{bpe},{sp}", "--prompt", "{{ question }}"],
            "could not be rendered",
        ),
    ],
)
def test_bad_input_exits_2_with_one_message(
    tmp_path: Path,
    models: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    rows: list[dict],
    extra: list[str],
    message: str,
) -> None:
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    args = [
        value.format(**{name: str(path) for name, path in models.items()})
        if "{" in value and "{{" not in value
        else value
        for value in extra
    ]
    assert main(["ensemble", "check", "--data", str(data), "--metric", "exact", *args]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert message in error
    assert "Traceback" not in error


def test_an_unknown_pipeline_handle_exits_2(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"models:\n  smol: {{source: {models['bpe']}}}\n"
        "stages:\n  s: {model: smol, prompt: '{{ input }}'}\n"
    )
    data = write_jsonl(tmp_path / "dev.jsonl", [{"input": "x", "answer": "y"}])
    code = main(
        [
            "ensemble",
            "check",
            "--pipeline",
            str(pipeline),
            "--members",
            "smol,gemma",
            "--data",
            str(data),
            "--metric",
            "exact",
        ]
    )
    assert code == 2
    assert "no model handle 'gemma'" in capsys.readouterr().err


def test_check_with_pipeline_handles_prints_the_ensemble_block(
    tmp_path: Path, runtime: Runtime, models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"models:\n  first: {{source: {models['bpe']}, dtype: float32}}\n"
        f"  again: {{source: {models['bpe']}, dtype: float32}}\n"
        "stages:\n  s: {model: first, prompt: '{{ input }}'}\n"
    )
    own = answers_of(runtime, "bpe")
    data = write_jsonl(tmp_path / "dev.jsonl", [{"input": q, "answer": a} for q, a in zip(QUESTIONS, own)])
    code = main(
        [
            "ensemble",
            "check",
            "--pipeline",
            str(pipeline),
            "--members",
            "again,first",
            "--data",
            str(data),
            "--metric",
            "exact",
            "--max-new-tokens",
            "4",
        ]
    )
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "first: member, 0.0 points behind again (≤ 10), answers 1.00× as long" in shown
    assert "YAML: ensemble: {method: unite, members: [again, first]}" in shown
