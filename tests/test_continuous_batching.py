"""Iteration-level batching: submitted requests join the running batch at the next step, finished rows leave,
the row and token caps hold, and every output is the one the request gives alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fslm.errors import FslmError
from fslm.pipeline import load_pipeline
from fslm.runtime import Generation, GenerationParams, GenerationRequest, ModelRef, Runtime

PROMPTS = [
    "Hi",
    "The cat sat on the mat while",
    "Question: what is two plus two?",
    "Rivers flow into the sea",
]


def staggered(tiny_adapters: tuple[Path, Path], count: int, **params: object) -> list[GenerationRequest]:
    adapters = [None, str(tiny_adapters[0]), str(tiny_adapters[1])]
    return [
        GenerationRequest(
            model="tiny",
            prompt=PROMPTS[i % len(PROMPTS)] + " " * (i % 2),
            adapter=adapters[i % 3],
            params=GenerationParams(max_new_tokens=4 + (i * 7) % 29, **params),  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def submit_over_time(runtime: Runtime, requests: list[GenerationRequest], gap: float) -> list[Generation]:
    """Submit each request from its own thread, `gap` seconds after the previous one."""
    results: list[Generation | None] = [None] * len(requests)

    def call(index: int) -> None:
        results[index] = runtime.submit(requests[index])

    threads = []
    for index in range(len(requests)):
        threads.append(threading.Thread(target=call, args=(index,)))
        threads[-1].start()
        time.sleep(gap)
    for thread in threads:
        thread.join()
    return [result for result in results if result is not None]


def tiny_runtime(tiny_model: Path, **options: object) -> Runtime:
    runtime = Runtime({"tiny": ModelRef(str(tiny_model), dtype="float32")}, **options)  # type: ignore[arg-type]
    runtime.base_for("tiny")
    return runtime


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [True, False])
def test_requests_arriving_over_time_get_their_alone_outputs(
    tiny_model: Path, tiny_adapters: tuple[Path, Path], reuse: bool
) -> None:
    requests = staggered(tiny_adapters, 12)
    alone = [tiny_runtime(tiny_model).generate([r])[0] for r in requests]
    runtime = tiny_runtime(tiny_model, reuse_prefixes=reuse, batch_quiet_seconds=0.0)
    served = submit_over_time(runtime, requests, gap=0.01)
    runtime.close()
    assert [g.text for g in served] == [g.text for g in alone]
    assert [g.finish_reason for g in served] == [g.finish_reason for g in alone]
    assert sum(runtime.stats.batch_sizes) == len(requests)


@pytest.mark.slow
def test_seeded_sampling_is_the_same_when_joining(tiny_model: Path, tiny_adapters: tuple[Path, Path]) -> None:
    requests = staggered(tiny_adapters, 8, temperature=0.8, top_p=0.9, seed=11)
    alone = [tiny_runtime(tiny_model).generate([r])[0] for r in requests]
    runtime = tiny_runtime(tiny_model, batch_quiet_seconds=0.0)
    assert [g.text for g in submit_over_time(runtime, requests, gap=0.01)] == [g.text for g in alone]
    runtime.close()


@pytest.mark.slow
def test_a_short_request_joins_and_leaves_before_a_long_one_ends(tiny_model: Path) -> None:
    runtime = tiny_runtime(tiny_model, batch_quiet_seconds=0.0)
    # Without the chat template, the tiny model continues "Hi" for 300 tokens without an EOS.
    long = GenerationRequest(
        model="tiny", prompt="Hi", chat_template=False, params=GenerationParams(max_new_tokens=300)
    )
    short = GenerationRequest(model="tiny", prompt="The cat", params=GenerationParams(max_new_tokens=3))
    finished: dict[str, float] = {}
    results: dict[str, Generation] = {}

    def call(name: str, request: GenerationRequest) -> None:
        results[name] = runtime.submit(request)
        finished[name] = time.monotonic()

    long_thread = threading.Thread(target=call, args=("long", long))
    long_thread.start()
    deadline = time.monotonic() + 30
    while not runtime.stats.batch_sizes and time.monotonic() < deadline:
        time.sleep(0.001)  # until the long request is prefilled; a fixed sleep let it finish first
    call("short", short)
    long_thread.join()
    runtime.close()
    assert results["long"].completion_tokens == 300
    assert finished["short"] < finished["long"]
    assert runtime.stats.batch_sizes == [1, 1]  # two prefills, one running batch


@pytest.mark.slow
@pytest.mark.parametrize("options", [{"max_batch_size": 2}, {"max_batch_tokens": 40}])
def test_caps_hold_and_outputs_stay(
    tiny_model: Path, tiny_adapters: tuple[Path, Path], options: dict
) -> None:
    requests = staggered(tiny_adapters, 9)
    alone = [tiny_runtime(tiny_model).generate([r])[0] for r in requests]
    runtime = tiny_runtime(tiny_model, batch_quiet_seconds=0.0, **options)
    served = submit_over_time(runtime, requests, gap=0.0)
    runtime.close()
    assert [g.text for g in served] == [g.text for g in alone]
    assert (
        max(runtime.stats.batch_sizes) <= 2
        if "max_batch_size" in options
        else len(runtime.stats.batch_sizes) > 1
    )


def test_a_bad_request_fails_alone(tiny_model: Path, tmp_path: Path) -> None:
    runtime = tiny_runtime(tiny_model)
    good = GenerationRequest(model="tiny", prompt="Hi", params=GenerationParams(max_new_tokens=5))
    with pytest.raises(FslmError, match="does not exist"):
        runtime.submit(GenerationRequest(model="tiny", prompt="Hi", adapter=str(tmp_path / "nothing")))
    with pytest.raises(FslmError, match="empty"):
        runtime.submit(GenerationRequest(model="tiny", prompt="", chat_template=False))
    assert runtime.submit(good).text == runtime.generate([good])[0].text
    runtime.close()


def test_stage_messages_record_cached_prompt_tokens(tmp_path: Path, tiny_model: Path) -> None:
    shots = "Question: what is two plus two? Answer: four. Question: where is Paris? Answer: in France. " * 2
    path = tmp_path / "few_shot.yaml"
    path.write_text(
        f"models:\n  m: {{source: {tiny_model}, dtype: float32}}\nstages:\n"
        f"  answer: {{model: m, prompt: '{shots}Question: {{{{ input }}}}',\n"
        "           generation: {max_new_tokens: 4}}\n"
    )
    pipeline = load_pipeline(path, store=":memory:")
    results = pipeline.batch(["the cat?", "the dog?", "the sea?"])
    cached = [result.messages[0]["cached_prompt_tokens"] for result in results]
    assert all(0 < count < result.messages[0]["prompt_tokens"] for count, result in zip(cached, results))
