"""`fslm finetune boost`: SAMME's numbers, the weighted loss, and the rounds on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from fslm.cli.main import main
from fslm.finetune.batching import collate
from fslm.finetune.boost.members import Measured
from fslm.finetune.boost.samme import (
    EPSILON_FLOOR,
    NoBetterThanChance,
    entropy,
    reweighted,
    samme_alpha,
    weighted_error,
)
from fslm.finetune.encode import Encoded
from fslm.finetune.model import completion_loss
from fslm.pipeline import load_pipeline

ITEMS = [
    {"goal": goal, "choices": ["the cat", "the dog", "a river", "four"], "answer": index % 4}
    for index, goal in enumerate(
        ["who sat on the mat", "what slept by the door", "what flows to the sea", "two plus two"] * 4
    )
]


def test_samme_alpha_error_and_weights() -> None:
    assert weighted_error([0.5, 0.25, 0.25], [1, 0, 1]) == pytest.approx(0.75)
    found = samme_alpha(0.4, 4)
    assert found.alpha == pytest.approx(math.log(0.6 / 0.4) + math.log(3)) and not found.capped
    with pytest.raises(NoBetterThanChance, match="at or above chance for K = 4"):
        samme_alpha(0.75, 4)
    capped = samme_alpha(0.0, 2)
    assert capped.capped and capped.alpha == pytest.approx(math.log((1 - EPSILON_FLOOR) / EPSILON_FLOOR))
    raised = reweighted([0.25] * 4, [1, 0, 0, 0.5], math.log(3))
    assert raised == pytest.approx(
        [3 / (3 + 2 + 3**0.5), 1 / (3 + 2 + 3**0.5), 1 / (3 + 2 + 3**0.5), 3**0.5 / (5 + 3**0.5)]
    )
    assert entropy([0.25] * 4) == pytest.approx(math.log(4)) and entropy([1, 0]) == 0


def test_sample_weights_scale_each_examples_loss(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=2, target_modules="all-linear")
    )
    examples = [Encoded([5, 6, 7], [8, 9, 2]), Encoded([10, 11], [12, 2])]
    plain, tokens = completion_loss(model, collate(examples, 0))
    ones, _ = completion_loss(model, collate(examples, 0, [1.0, 1.0]))
    weighted, _ = completion_loss(model, collate(examples, 0, [2.0, 0.0]))
    first, _ = completion_loss(model, collate(examples[:1], 0))
    assert tokens == 5 and torch.allclose(plain, ones)
    assert torch.allclose(weighted, 2 * first, atol=1e-5)


def test_mistakes_at_sample_and_token_level() -> None:
    from fslm.finetune.boost.measure import TokenResults
    from fslm.finetune.boost.task import BoostExample
    from fslm.finetune.sources import Example

    examples = [BoostExample(Example({}, "b"), ("a", "b"), 1), BoostExample(Example({}, "a"), ("a", "b"), 0)]
    gold = [TokenResults(-1.0, (True, False)), TokenResults(-2.0, (True, True))]
    choice = Measured([[0.6, 0.4], [0.7, 0.3]], gold)
    assert choice.mistakes(examples, "sample") == [1.0, 0.0]
    assert choice.mistakes(examples, "token") == [0.5, 0.0]
    assert Measured(None, gold).mistakes(examples, "sample") == [1.0, 0.0]


@pytest.fixture
def recipe(tmp_path: Path, tiny_model: Path) -> Path:
    (tmp_path / "p.yaml").write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\ninputs: [goal, choices]\n"
        "stages:\n  pick:\n    model: m\n    choices: '{{ choices }}'\n    prompt: 'Q: {{ goal }}. A:'\n"
    )
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    (tmp_path / "boost.yaml").write_text(
        "target: {pipeline: p.yaml, stage: pick}\ndata: {path: train.jsonl, target: answer}\nrounds: 2\n"
        "lora: {r: 4}\ntrain: {max_steps: 2, batch_size: 8, learning_rate: 0.01, max_length: 64}\n"
        "output: boosts/pick\n"
    )
    return tmp_path / "boost.yaml"


@pytest.mark.slow
def test_boosting_writes_members_alphas_and_rounds_a_boost_stage_reads(recipe: Path, capsys: Any) -> None:
    assert main(["finetune", "boost", str(recipe)]) == 0
    output = recipe.parent / "boosts" / "pick"
    record = json.loads((output / "boost.json").read_text())
    assert record["classes"] == 4 and record["error_level"] == "sample"
    rounds = record["rounds"]
    assert 1 <= len(rounds) <= 2 and len(record["members"]) == len(rounds)
    assert rounds[0]["weight_entropy"] == pytest.approx(math.log(len(ITEMS)))
    for member, one in zip(record["members"], rounds, strict=True):
        assert member["alpha"] == pytest.approx(
            math.log((1 - one["error"]) / one["error"]) + math.log(3), rel=1e-4
        )
        assert (output / member["adapter"] / "adapter_config.json").is_file()
        assert (
            json.loads((output / member["adapter"] / "training.json").read_text())["task_format"]["kind"]
            == "choices"
        )
    assert "round 1: ε" in capsys.readouterr().err
    members = ", ".join(f"{{model: m, adapter: boosts/pick/{m['adapter']}}}" for m in record["members"])
    (recipe.parent / "b.yaml").write_text(
        (recipe.parent / "p.yaml").read_text()
        + f"  vote:\n    boost: {{members: [{members}], checkpoint: boosts/pick}}\n"
        "    choices: '{{ choices }}'\n    prompt: 'Q: {{ goal }}. A:'\n"
        "edges:\n  - {from: pick, to: vote}\n"
    )
    pipeline = load_pipeline(recipe.parent / "b.yaml", store=":memory:")
    message = pipeline.invoke({"goal": "two plus two", "choices": ITEMS[0]["choices"]}).messages[-1]
    assert message["choices"]["weights"] == pytest.approx(
        [m["alpha"] / sum(x["alpha"] for x in record["members"]) for m in record["members"]]
    )


def test_a_round_no_better_than_chance_stops_boosting(
    recipe: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Measured, "mistakes", lambda self, examples, level: [1.0] * len(examples))
    assert main(["finetune", "boost", str(recipe)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "round 1 stopped boosting: weighted error ε = 1.0000 is at or above chance for K = 4" in err
    assert "no member is better than chance" in err and not (recipe.parent / "boosts" / "pick").exists()


@pytest.mark.slow
def test_a_round_without_mistakes_has_its_error_capped(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Measured, "mistakes", lambda self, examples, level: [0.0] * len(examples))
    assert main(["finetune", "boost", str(recipe)]) == 0
    rounds = json.loads((recipe.parent / "boosts" / "pick" / "boost.json").read_text())["rounds"]
    assert rounds[0]["epsilon_capped"] and "was raised to 1e-06" in rounds[0]["note"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("rounds: 2", "rounds: 0"), "rounds: Input should be greater than or equal to 1"),
        (("rounds: 2", "rounds: 2\nerror: word"), "Input should be 'sample' or 'token'"),
        (("rounds: 2", "rounds: 2\nclasses: 1"), "classes: Input should be greater than or equal to 2"),
        (("stage: pick", "stage: nope"), "has no stage 'nope'"),
        (("target: answer", "target: missing"), "has no value for missing"),
    ],
)
def test_bad_recipes_exit_2(recipe: Path, capsys: Any, change: tuple[str, str], message: str) -> None:
    recipe.write_text(recipe.read_text().replace(*change))
    assert main(["finetune", "boost", str(recipe)]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow
def test_a_text_stage_boosts_with_two_classes_at_token_level(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\n"
        "stages:\n  answer:\n    model: m\n    chat_template: false\n    prompt: 'Q: {{ input }} A:'\n"
    )
    pairs = [("two plus two", "four"), ("the capital of France", "Paris"), ("what boils water", "heat")] * 4
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"input": q, "target": a}) + "\n" for q, a in pairs)
    )
    (tmp_path / "boost.yaml").write_text(
        "target: {pipeline: p.yaml, stage: answer}\ndata: {path: train.jsonl}\nrounds: 2\nerror: token\n"
        "lora: {r: 8}\ntrain: {max_steps: 1, batch_size: 12, learning_rate: 0.02, max_length: 64}\n"
        "output: out\n"
    )
    assert main(["finetune", "boost", str(tmp_path / "boost.yaml")]) == 0
    record = json.loads((tmp_path / "out" / "boost.json").read_text())
    assert (
        record["classes"] == 2 and record["task"]["kind"] == "generate" and record["error_level"] == "token"
    )
    assert len(record["rounds"]) == 2
    for one in record["rounds"]:
        assert 0 < one["error"] < 0.5 and not one["epsilon_capped"]
    # Token level: the error counts wrong tokens, not a whole number of the 12 wrong examples.
    assert any(round(one["unweighted_error"] * len(pairs), 3) % 1 for one in record["rounds"])


@pytest.mark.slow
def test_an_interrupted_boost_resumes_after_its_last_finished_round(
    recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fslm.finetune.boost.members import StageModel
    from fslm.finetune.boost.recipe import BoostRecipe
    from fslm.finetune.boost.workflow import boost_finetune
    from fslm.finetune.loading import read_recipe
    from fslm.finetune.train import Interrupted

    output = recipe.parent / "boosts" / "pick"
    trained: list[int] = []
    train = StageModel.train

    def counted(self: StageModel, *args: Any, **kwargs: Any) -> Any:
        trained.append(len(trained) + 1)
        if len(trained) == stop_at:
            raise Interrupted(recipe.parent, 0)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(StageModel, "train", counted)
    stop_at = 0
    assert main(["finetune", "boost", str(recipe)]) == 0
    whole, whole_trained = json.loads((output / "boost.json").read_text()), len(trained)
    trained.clear()
    stop_at = 2
    with pytest.raises(Interrupted):
        boost_finetune(read_recipe(recipe, BoostRecipe), force=True)
    trained.clear()
    stop_at = 0
    assert main(["finetune", "boost", str(recipe), "--resume"]) == 0
    assert len(trained) == whole_trained - 1  # round 1 was not trained again
    resumed = json.loads((output / "boost.json").read_text())
    assert [m["alpha"] for m in resumed["members"]] == pytest.approx([m["alpha"] for m in whole["members"]])
    assert [r["error"] for r in resumed["rounds"]] == [r["error"] for r in whole["rounds"]]


def test_resume_refuses_without_an_interrupted_run_or_with_another_recipe(
    recipe: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fslm.finetune.boost import rounds
    from fslm.finetune.boost.members import StageModel

    assert main(["finetune", "boost", str(recipe), "--resume"]) == 2
    assert "nothing to resume: no interrupted run" in " ".join(capsys.readouterr().err.split())
    round_one = recipe.parent / "boosts" / ".pick.new" / "member_1"
    round_one.mkdir(parents=True)
    (round_one / rounds.ROUND_FILE).write_text(json.dumps({"fingerprint": "another recipe's"}) + "\n")
    monkeypatch.setattr(StageModel, "train", lambda *args, **kwargs: pytest.fail("trained"))
    assert main(["finetune", "boost", str(recipe), "--resume"]) == 2
    assert "boosted another recipe or other data" in " ".join(capsys.readouterr().err.split())
    assert (round_one / rounds.ROUND_FILE).is_file()  # nothing lost
    with pytest.raises(SystemExit) as exited:
        main(["finetune", "boost", str(recipe), "--resume", "--force"])
    assert exited.value.code == 2
