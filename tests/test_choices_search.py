"""`search: best_first`: the option of highest summed log-probability found by best-first search over the
options' token trie. It must pick what full scoring picks, give the chosen option's exact sum, and leave only
upper bounds for the options it pruned."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny import make_tiny_adapter, make_tiny_model

from fslm.cli.main import main
from fslm.pipeline import load_pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.runtime.scoring import ScoreRequest

# Options that share leading words, some a prefix of another, of one to many tokens.
OPTIONS = [
    "card arrival",
    "card arrival late",
    "card lost",
    "card",
    "cash withdrawal charge",
    "cash",
    "top up failed",
    "top up limits",
    "transfer timing",
    "the cat sat on the mat",
    "x",
]
PROMPTS = [
    "Message: my card has not come yet\nIntent:",
    "Message: I want to move money\nIntent:",
    "Question: what is two plus two? Answer:",
    "The cat sat on the ",
    "Rivers flow",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search-models")
    model = make_tiny_model(root / "bpe", seed=0)
    return {"model": model, "adapter": make_tiny_adapter(model, root / "adapter", seed=1)}


@pytest.fixture(scope="module", params=[True, False], ids=["prefix reuse", "no prefix reuse"])
def runtime(model_dir: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[Runtime]:
    with Runtime(
        {"m": ModelRef(str(model_dir["model"]), "float32")}, reuse_prefixes=request.param
    ) as runtime:
        yield runtime


def requests(best_first: bool, adapter: str | None = None, seed: int = 0) -> list[ScoreRequest]:
    generator = random.Random(seed)
    made = []
    for prompt in PROMPTS:
        options = generator.sample(OPTIONS, k=generator.randint(2, len(OPTIONS)))
        made.append(
            ScoreRequest("m", prompt, tuple(f" {o}" for o in options), adapter=adapter, best_first=best_first)
        )
    return made


def best(logprobs: tuple[float, ...], pruned: tuple[int, ...] = ()) -> int:
    complete = [index for index in range(len(logprobs)) if index not in pruned]
    return max(complete, key=lambda index: (logprobs[index], -index))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("with_adapter", [False, True])
def test_the_search_picks_what_full_scoring_picks(
    runtime: Runtime, model_dir: dict[str, Path], seed: int, with_adapter: bool
) -> None:
    adapter = str(model_dir["adapter"]) if with_adapter else None
    full = runtime.serve(requests(False, adapter, seed))
    searched = runtime.serve(requests(True, adapter, seed))
    for whole, found in zip(full, searched, strict=True):
        assert not whole.pruned
        chosen = best(whole.logprobs)
        assert best(found.logprobs, found.pruned) == chosen
        assert found.tokens == whole.tokens
        assert found.logprobs[chosen] == pytest.approx(whole.logprobs[chosen], abs=1e-4)
        for index, (exact, value) in enumerate(zip(whole.logprobs, found.logprobs, strict=True)):
            if index in found.pruned:
                assert value >= exact - 1e-4  # a bound: at least the option's sum
            else:
                assert value == pytest.approx(exact, abs=1e-4)


def test_the_search_prunes_options_it_never_completes(runtime: Runtime) -> None:
    searched = runtime.serve(requests(True, seed=1))
    assert any(result.pruned for result in searched)
    for result in searched:
        assert best(result.logprobs, result.pruned) not in result.pruned
        assert max(result.logprobs) == pytest.approx(result.logprobs[best(result.logprobs, result.pruned)])


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
      card_lost: card lost
      cash: cash withdrawal charge
      top_up_failed: top up failed
      top_up_limits: top up limits
"""
ITEMS = [{"text": "my card has not come"}, {"text": "top up did not work"}, {"text": "fees at the atm"}]


def write(tmp_path: Path, model: Path, search: str) -> Path:
    path = tmp_path / f"{search}.yaml"
    path.write_text(PIPELINE.format(model=model, search=search))
    return path


@pytest.mark.slow
def test_a_best_first_stage_writes_the_full_stages_label_and_records_the_pruned(
    tmp_path: Path, model_dir: dict[str, Path]
) -> None:
    full = load_pipeline(write(tmp_path, model_dir["model"], "full"), store=":memory:").batch(ITEMS)
    searched_pipeline = load_pipeline(write(tmp_path, model_dir["model"], "best_first"), store=":memory:")
    searched = searched_pipeline.batch(ITEMS)
    alone = [searched_pipeline.invoke(item) for item in ITEMS]
    for whole, found, single in zip(full, searched, alone, strict=True):
        assert found.output == whole.output == single.output
        record = found.messages[0]["choices"]
        assert record["chosen"] == whole.messages[0]["choices"]["chosen"]
        assert set(record.get("pruned", [])) <= set(range(5)) - {record["chosen"]}


def test_eval_of_a_best_first_stage_reports_acc_only(tmp_path: Path, model_dir: dict[str, Path]) -> None:
    data = tmp_path / "dev.jsonl"
    labels = ["card_arrival", "top_up_failed", "cash"]
    data.write_text(
        "".join(json.dumps({**item, "label": label}) + "\n" for item, label in zip(ITEMS, labels))
    )
    out = tmp_path / "out.jsonl"
    command = ["eval", str(write(tmp_path, model_dir["model"], "best_first")), "--data", str(data)]
    assert (
        main([*command, "--answer-field", "label", "--output", str(out), "--store", str(tmp_path / "r")]) == 0
    )
    rows = [json.loads(line) for line in out.read_text().split("\n") if line]
    assert all(list(row["scores"]) == ["acc"] for row in rows)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("normalize: none", "normalize: token"),
        ("model: m", "ensemble: {members: [m, m2]}"),
    ],
    ids=["per-token normalisation", "ensemble"],
)
def test_best_first_needs_summed_scores_of_one_model(
    tmp_path: Path, model_dir: dict[str, Path], capsys: Any, change: str, message: str
) -> None:
    text = PIPELINE.format(model=model_dir["model"], search="best_first").replace(change, message)
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("models:\n", f"models:\n  m2: {{source: {model_dir['model']}}}\n"))
    assert main(["validate", str(path)]) == 2
    assert "search: best_first needs normalize: none and one model" in " ".join(
        capsys.readouterr().err.split()
    )
