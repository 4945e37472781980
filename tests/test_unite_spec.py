"""The `ensemble:` block of a stage: validation, and an ensemble stage in a running pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import make_tiny_model

from fslm.pipeline import load_pipeline
from fslm.spec import SpecError, load_spec

MODELS = "models:\n  smol: {source: smollm2-135m-instruct}\n  gemma: {source: gemma3-270m}\n"


def problems(tmp_path: Path, stage: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(MODELS + "stages:\n  answer:\n" + stage)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    return str(error.value)


def test_a_valid_ensemble_block(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    path = tmp_path / "p.yaml"
    path.write_text(
        MODELS
        + "stages:\n  answer:\n    ensemble:\n      members: [smol, {model: gemma, adapter: ./adapter}]\n"
        + "      weights: [1, 2.5]\n      primary: gemma\n    prompt: 'Q: {{ input }}'\n"
    )
    ensemble = load_spec(path).stages["answer"].ensemble
    assert ensemble is not None
    assert ensemble.handles == ["smol", "gemma"] and ensemble.members[1].adapter == adapter
    assert ensemble.top_k == 10 and ensemble.weights == [1.0, 2.5] and ensemble.primary_index == 1


def test_unknown_member_is_reported_with_its_line(tmp_path: Path) -> None:
    text = problems(tmp_path, "    ensemble: {members: [smol, gema]}\n    prompt: x\n")
    assert (
        "p.yaml:6" in text and "ensemble member 'gema' is not a defined model; did you mean 'gemma'" in text
    )


def test_top_k_below_one(tmp_path: Path) -> None:
    assert "greater than or equal to 1" in problems(
        tmp_path, "    ensemble: {members: [smol, gemma], top_k: 0}\n    prompt: x\n"
    )


def test_weights_must_match_the_members(tmp_path: Path) -> None:
    text = problems(tmp_path, "    ensemble: {members: [smol, gemma], weights: [1, 2, 3]}\n    prompt: x\n")
    assert "'weights' has 3 values for 2 members" in text
    assert "greater than 0" in problems(
        tmp_path, "    ensemble: {members: [smol, gemma], weights: [1, 0]}\n    prompt: x\n"
    )


def test_primary_must_be_a_member(tmp_path: Path) -> None:
    assert "primary 'other' is not a member" in problems(
        tmp_path, "    ensemble: {members: [smol, gemma], primary: other}\n    prompt: x\n"
    )


def test_model_or_ensemble_not_both(tmp_path: Path) -> None:
    assert "exactly one of 'model' or 'ensemble'" in problems(
        tmp_path, "    model: smol\n    ensemble: {members: [smol]}\n    prompt: x\n"
    )


def test_typo_inside_the_block(tmp_path: Path) -> None:
    text = problems(tmp_path, "    ensemble: {members: [smol], topk: 3}\n    prompt: x\n")
    assert "unknown key 'topk'" in text and "did you mean 'top_k'" in text


@pytest.fixture
def ensemble_pipeline(tmp_path: Path) -> Path:
    bpe = make_tiny_model(tmp_path / "bpe", seed=0)
    sp = make_tiny_model(tmp_path / "sp", seed=2, sentencepiece=True)
    path = tmp_path / "ens.yaml"
    path.write_text(
        f"models:\n  a: {{source: {bpe}, dtype: float32}}\n  b: {{source: {sp}, dtype: float32}}\n"
        "stages:\n  first:\n    model: a\n    prompt: 'Say: {{ input }}'\n    generation: {max_new_tokens: "
        "6}\n  vote:\n    ensemble: {members: [a, b], top_k: 5}\n    chat_template: false\n"
        "    prompt: '{{ first }} and'\n    generation: {max_new_tokens: 10}\n"
    )
    return path


def test_an_ensemble_stage_runs_and_records_its_vote(ensemble_pipeline: Path) -> None:
    pipeline = load_pipeline(ensemble_pipeline, store=":memory:")
    result = pipeline.invoke("the cat")
    message = result.messages[-1]
    assert message["stage"] == "vote" and message["model"] == "a + b"
    record = message["ensemble"]
    assert record["members"] == ["a", "b"] and len(record["first_tokens"]) == 2
    assert 0 <= record["disagreements"] <= record["steps"] <= 10
    assert result.output == message["text"]
    assert pipeline.runtime.stats.base_loads == 2


@pytest.mark.slow
def test_concurrent_runs_share_ensemble_batches_and_match_one_at_a_time(ensemble_pipeline: Path) -> None:
    pipeline = load_pipeline(ensemble_pipeline, store=":memory:")
    texts = ["the cat", "a dog ran", "hello there", "one two three"]
    alone = [pipeline.invoke(text) for text in texts]
    assert pipeline.runtime.stats.ensemble_batch_sizes == [1] * len(texts)

    together = pipeline.batch(texts)

    assert [[m["text"] for m in r.messages] for r in together] == [
        [m["text"] for m in r.messages] for r in alone
    ]
    assert max(pipeline.runtime.stats.ensemble_batch_sizes[len(texts) :]) > 1
