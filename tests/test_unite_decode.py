"""UniTE ensemble decoding on tiny models with different tokenizers (fslm.runtime.ensemble)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny import make_tiny_model

from fslm.errors import FslmError
from fslm.runtime import GenerationParams, GenerationRequest, LoadedBase, ModelRef, Runtime
from fslm.runtime.ensemble import EnsembleMember, EnsembleRequest
from fslm.runtime.ensemble.alignment import EOS, continues_utf8, split_incomplete_utf8
from fslm.runtime.ensemble.decode import EnsembleRow, decode_ensemble
from fslm.runtime.ensemble.members import LoadedMember, MemberBatch, token_text_for
from fslm.runtime.ensemble.vote import Ballot, union_average

PROMPTS = ["The cat sat on the", "Question: what is two plus two? Answer:", "Rivers flow"]
GREEDY = GenerationParams(max_new_tokens=24)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    root = tmp_path_factory.mktemp("unite-models")
    models = {
        "bpe": ModelRef(str(make_tiny_model(root / "bpe", seed=0)), "float32"),
        "bpe2": ModelRef(str(make_tiny_model(root / "bpe2", seed=1)), "float32"),
        "sp": ModelRef(str(make_tiny_model(root / "sp", seed=2, sentencepiece=True)), "float32"),
    }
    with Runtime(models) as runtime:
        for handle in models:
            _never_emit_broken_utf8(runtime.base_for(handle))
        yield runtime


def _never_emit_broken_utf8(base: LoadedBase) -> None:
    """Random tiny models emit stray bytes (a lone 0x8C) all the time; real models do not. A large negative
    bias on every token that is not complete UTF-8 on its own keeps the tests about text, as with real
    models."""
    keys = token_text_for(base).keys
    broken = [
        i for i, key in enumerate(keys) if isinstance(key, bytes) and split_incomplete_utf8(key)[1:] != (b"",)
    ]
    broken += [
        i for i, key in enumerate(keys) if isinstance(key, bytes) and "\ufffd" in key.decode(errors="replace")
    ]
    bias = torch.zeros(len(keys))
    bias[broken] = -1e4
    base.model.lm_head.bias = torch.nn.Parameter(bias, requires_grad=False)


def ensemble(
    *handles: str, prompt: str, params: GenerationParams = GREEDY, **options: object
) -> EnsembleRequest:
    return EnsembleRequest(
        members=tuple(EnsembleMember(handle) for handle in handles),
        prompt=prompt,
        chat_template=False,
        params=params,
        **options,  # type: ignore[arg-type]
    )


def members_of(runtime: Runtime, *handles: str) -> list[LoadedMember]:
    bases = [runtime.base_for(handle) for handle in handles]
    return [
        LoadedMember(base, "__base__", token_text_for(base), handle) for base, handle in zip(bases, handles)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("handle", ["bpe", "sp"])
def test_a_model_ensembled_with_itself_is_its_greedy_decode(runtime: Runtime, handle: str) -> None:
    for chat in (False, True):
        plain = runtime.generate(
            [GenerationRequest(handle, prompt, chat_template=chat, params=GREEDY) for prompt in PROMPTS]
        )
        doubled = runtime.generate_ensemble(
            [
                EnsembleRequest(
                    (EnsembleMember(handle), EnsembleMember(handle)), p, chat_template=chat, params=GREEDY
                )
                for p in PROMPTS
            ]
        )
        assert [g.generation.text for g in doubled] == [g.text for g in plain]
        assert [g.generation.completion_tokens for g in doubled] == [g.completion_tokens for g in plain]
        assert all(g.disagreements == 0 for g in doubled)


def _brute_force_text(runtime: Runtime, prompt: str, top_k: int, steps: int) -> str:
    """Union-average greedy decoding of bpe + bpe2 (one tokenizer), recomputing everything every step."""
    bases = [runtime.base_for("bpe"), runtime.base_for("bpe2")]
    tokenizer = bases[0].tokenizer
    ids = tokenizer(prompt)["input_ids"]
    completion: list[int] = []
    for _ in range(steps):
        logits = [base.model(input_ids=torch.tensor([ids + completion])).logits[0, -1] for base in bases]
        union = list(dict.fromkeys(i for row in logits for i in row.topk(top_k).indices.tolist()))
        average = sum(torch.softmax(row[union], dim=0) for row in logits) / 2
        chosen = union[int(average.argmax())]
        if chosen == tokenizer.eos_token_id:
            break
        completion.append(chosen)
    return tokenizer.decode(completion, skip_special_tokens=True).strip()


@pytest.mark.slow
@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_same_tokenizer_choice_equals_brute_force_union_average(runtime: Runtime, top_k: int) -> None:
    results = runtime.generate_ensemble([ensemble("bpe", "bpe2", prompt=p, top_k=top_k) for p in PROMPTS])
    with torch.inference_mode():
        expected = [_brute_force_text(runtime, p, top_k, GREEDY.max_new_tokens) for p in PROMPTS]
    assert [r.generation.text for r in results] == expected
    assert any(r.disagreements > 0 for r in results)  # the union computation was exercised


def test_union_average_of_one_member_is_its_softmax(runtime: Runtime) -> None:
    (member,) = members_of(runtime, "bpe")
    logits = torch.randn(len(member.text.keys))
    union = [member.text.keys[i] for i in (5, 40, 7)]
    expected = torch.softmax(logits[[5, 40, 7]], dim=0)
    assert torch.allclose(union_average([member], [logits], union, (1.0,), 0.0), expected)


def test_a_member_that_cannot_produce_any_candidate_sits_the_step_out(runtime: Runtime) -> None:
    bpe, sp = members_of(runtime, "bpe", "sp")
    pad = bpe.text.keys[bpe.base.tokenizer.pad_token_id]  # a special token only bpe's tokenizer has
    assert sp.text.score_id(pad) is None
    logits = [torch.randn(len(bpe.text.keys)), torch.randn(len(sp.text.keys))]
    assert union_average([bpe, sp], logits, [pad], (0.5, 0.5), 0.8).tolist() == [1.0]


def _second_members_top_token(ballot: Ballot) -> torch.Tensor:
    chosen = torch.zeros(len(ballot.union))
    chosen[list(ballot.union).index(ballot.tops[1][0])] = 1.0
    return chosen


def test_the_vote_passed_to_the_decoder_picks_the_tokens(runtime: Runtime) -> None:
    members = members_of(runtime, "bpe", "sp")
    requests = [ensemble("bpe", "sp", prompt=p) for p in PROMPTS]
    voted = decode_ensemble(members, requests, vote=_second_members_top_token)
    alone = runtime.generate(
        [GenerationRequest("sp", p, chat_template=False, params=GREEDY) for p in PROMPTS]
    )
    assert [r.generation.text for r in voted] == [g.text for g in alone]
    assert any(r.disagreements > 0 for r in voted)
    united = decode_ensemble(members, requests)
    assert [r.generation.text for r in united] != [g.text for g in alone]


def test_heterogeneous_output_is_valid_text_in_both_tokenizers(runtime: Runtime) -> None:
    results = runtime.generate_ensemble([ensemble("bpe", "sp", prompt=p) for p in PROMPTS])
    for result in results:
        text = result.generation.text
        assert "\ufffd" not in text
        for handle in ("bpe", "sp"):
            tokenizer = runtime.base_for(handle).tokenizer
            assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    assert any(r.disagreements > 0 for r in results)


def test_incremental_state_equals_encoding_the_full_text_afresh(runtime: Runtime) -> None:
    members = members_of(runtime, "bpe", "sp")
    checked = 0

    def check(batches: list[MemberBatch], rows: list[EnsembleRow]) -> None:
        nonlocal checked
        completion = [bytes(row.completion) for row in rows]
        for index, (member, batch) in enumerate(zip(members, batches, strict=True)):
            for position, row in enumerate(rows):
                track = row.tracks[index]
                assert (
                    b"".join(member.text.keys[i] for i in track.ids) + track.pending == completion[position]
                )  # type: ignore[misc]
                ids = row.prompt_ids[index] + track.ids
                fresh = member.base.model(input_ids=torch.tensor([ids])).logits[0, -1]
                assert torch.allclose(batch.logits[position], fresh, atol=1e-4)
                checked += 1

    decode_ensemble(
        members, [ensemble("bpe", "sp", prompt=p, params=GenerationParams(12)) for p in PROMPTS], check
    )
    assert checked > 20


@pytest.mark.slow
def test_batched_requests_give_the_same_text_as_alone(runtime: Runtime) -> None:
    requests = [ensemble("bpe", "sp", prompt=p) for p in PROMPTS]
    batched = runtime.generate_ensemble(requests)
    alone = [runtime.generate_ensemble([request])[0] for request in requests]
    assert [r.generation.text for r in batched] == [r.generation.text for r in alone]


def test_record_shows_each_members_own_first_token(runtime: Runtime) -> None:
    (result,) = runtime.generate_ensemble([ensemble("bpe", "sp", prompt=PROMPTS[0])])
    for handle, first in zip(("bpe", "sp"), result.first_tokens, strict=True):
        (alone,) = runtime.generate(
            [GenerationRequest(handle, PROMPTS[0], chat_template=False, params=GenerationParams(1))]
        )
        assert first.strip() == alone.text or (first == "<eos>" and alone.finish_reason == "eos")


def test_stop_string_and_max_tokens_end_the_run(runtime: Runtime) -> None:
    (long,) = runtime.generate_ensemble([ensemble("bpe", "sp", prompt=PROMPTS[1])])
    assert long.steps == GREEDY.max_new_tokens and long.generation.finish_reason == "length"
    stop = long.generation.text[3:6]
    (stopped,) = runtime.generate_ensemble(
        [ensemble("bpe", "sp", prompt=PROMPTS[1], params=GenerationParams(24, stop=(stop,)))]
    )
    assert stopped.generation.finish_reason == "stop"
    assert stop not in stopped.generation.text and long.generation.text.startswith(stopped.generation.text)


def test_eos_of_any_member_is_one_union_token(runtime: Runtime) -> None:
    texts = [token_text_for(runtime.base_for(handle)) for handle in ("bpe", "sp")]
    assert texts[0].tokenizer.eos_token != texts[1].tokenizer.eos_token
    assert all(text.keys[text.tokenizer.eos_token_id] == EOS for text in texts)


@pytest.mark.slow
def test_sampling_is_reproducible_with_a_seed(runtime: Runtime) -> None:
    def sampled(temperature: float, seed: int) -> str:
        params = GenerationParams(max_new_tokens=16, temperature=temperature, seed=seed)
        request = ensemble("bpe", "sp", prompt=PROMPTS[0], params=params)
        return runtime.generate_ensemble([request])[0].generation.text

    assert sampled(1.0, seed=3) == sampled(1.0, seed=3)
    # The control: the seed and the temperature reach the sampler, so the run above is a sampled one.
    assert sampled(1.0, seed=4) != sampled(1.0, seed=3)
    assert sampled(0.5, seed=3) != sampled(1.0, seed=3)


def test_members_with_and_without_chat_template_are_refused(runtime: Runtime, tmp_path: Path) -> None:
    base = runtime.base_for("sp")
    template = base.tokenizer.chat_template
    base.tokenizer.chat_template = None
    try:
        with pytest.raises(FslmError, match="chat_template: false"):
            runtime.generate_ensemble(
                [EnsembleRequest((EnsembleMember("bpe"), EnsembleMember("sp")), "hi", params=GREEDY)]
            )
    finally:
        base.tokenizer.chat_template = template


def test_a_member_that_cannot_load_is_named(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(FslmError, match="member 'nope' could not be loaded"):
        runtime.generate_ensemble([ensemble("bpe", "nope", prompt="hi")])
    with pytest.raises(FslmError, match="member 'bpe\\+.*' could not be loaded"):
        runtime.generate_ensemble(
            [EnsembleRequest((EnsembleMember("bpe", str(tmp_path)),), "hi", chat_template=False)]
        )


def test_bytes_that_break_utf8_cannot_continue_the_text() -> None:
    assert continues_utf8(bytearray(b"caf"), "é".encode()[:1])  # waits for its second byte
    assert continues_utf8(bytearray(b"caf\xc3"), b"\xa9")
    assert not continues_utf8(bytearray(b"caf"), b"\xa9")
    assert not continues_utf8(bytearray(b"caf\xc3"), b"x")
