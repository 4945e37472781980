"""Token text across tokenizers and incremental re-tokenization (fslm.runtime.ensemble.alignment)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tiny import make_tiny_sentencepiece_tokenizer, make_tiny_tokenizer
from transformers import AutoTokenizer

from fslm.errors import FslmError
from fslm.runtime.ensemble.alignment import EOS, IncrementalTokens, Special, TokenText, split_incomplete_utf8

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France,\n\nand Berlin  is the capital of Germany.",
    "Question: what is 2 + 2? Answer: four. Déjà vu, naïve café — 42%!",
    "  leading spaces,\ttabs\tand trailing   ",
    "\n\nnewlines\nfirst, then words; then 🙂 and ünïcödé.",
]


@pytest.fixture(scope="module")
def byte_level(tmp_path_factory: pytest.TempPathFactory) -> TokenText:
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path_factory.mktemp("bpe")))
    return TokenText(tokenizer, frozenset({tokenizer.eos_token_id}), "byte-level")


@pytest.fixture(scope="module")
def metaspace(tmp_path_factory: pytest.TempPathFactory) -> TokenText:
    tokenizer = AutoTokenizer.from_pretrained(
        make_tiny_sentencepiece_tokenizer(tmp_path_factory.mktemp("sp"))
    )
    return TokenText(tokenizer, frozenset({tokenizer.eos_token_id}), "sentencepiece")


@pytest.fixture(params=["byte_level", "metaspace"])
def token_text(request: pytest.FixtureRequest) -> TokenText:
    return request.getfixturevalue(request.param)


def test_token_keys_are_the_bytes_they_stand_for(token_text: TokenText) -> None:
    for text in TEXTS:
        ids = token_text.encode(text)
        assert b"".join(token_text.keys[i] for i in ids) == text.encode()  # type: ignore[misc]


def test_byte_level_and_sentencepiece_markers_are_normalised(
    byte_level: TokenText, metaspace: TokenText
) -> None:
    for pieces, text in ((["Ġthe", "Ċ"], byte_level), (["▁the", "<0x0A>"], metaspace)):
        ids = text.tokenizer.convert_tokens_to_ids(pieces)
        assert [text.keys[i] for i in ids] == [b" the", b"\n"]


def test_specials_and_eos_are_keys_without_text(metaspace: TokenText) -> None:
    tokenizer = metaspace.tokenizer
    assert metaspace.keys[tokenizer.eos_token_id] == EOS
    assert metaspace.keys[tokenizer.pad_token_id] == Special("<pad>")
    assert metaspace.ids[EOS] == tokenizer.eos_token_id


def test_a_text_with_a_piece_of_its_own_maps_to_it_not_to_its_byte_fallback(metaspace: TokenText) -> None:
    (newline_fallback,) = metaspace.tokenizer.convert_tokens_to_ids(["<0x0A>"])
    letter = metaspace.encode("e")[0]
    assert metaspace.ids[b"e"] == letter
    assert metaspace.ids[b"\n"] == newline_fallback  # the tokenizer has no other piece for a newline


def test_first_piece_never_is_a_bare_space(metaspace: TokenText) -> None:
    key = b"  sat"  # sentencepiece splits it as "▁" + "▁sat"
    assert metaspace.tokenizer.convert_ids_to_tokens(metaspace.encode("  sat"))[0] == "▁"
    assert metaspace.keys[metaspace.score_id(key)] == b" sat"  # type: ignore[index]


def test_first_piece_of_a_word_outside_the_vocabulary(byte_level: TokenText) -> None:
    key = b" foxtrotting"
    assert key not in byte_level.ids
    piece = byte_level.score_id(key)
    assert piece == byte_level.encode(" foxtrotting")[0]


def test_a_tokenizer_without_decoder_is_refused(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path / "t"))
    tokenizer.backend_tokenizer.decoder = None
    with pytest.raises(FslmError, match="has no decoder"):
        TokenText(tokenizer, frozenset(), "broken")


def test_incomplete_characters_wait_for_their_other_bytes() -> None:
    assert split_incomplete_utf8("é".encode()[:1]) == ("", b"\xc3")
    assert split_incomplete_utf8(b"ab" + "🙂".encode()[:3]) == ("ab", "🙂".encode()[:3])
    assert split_incomplete_utf8("aé".encode()) == ("aé", b"")


def test_appending_text_in_pieces_equals_encoding_it_whole(token_text: TokenText) -> None:
    chooser = random.Random(0)
    for text in TEXTS * 8:
        data = text.encode()
        cuts = sorted(chooser.sample(range(1, len(data)), k=min(len(data) - 1, chooser.randint(3, 30))))
        tokens = IncrementalTokens(token_text)
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            tokens.append_bytes(data[start:end])
        assert not tokens.pending
        assert tokens.ids == token_text.encode(text), text


def test_re_tokenizing_touches_only_the_tail(byte_level: TokenText) -> None:
    tokens = IncrementalTokens(byte_level)
    tokens.append_bytes(b"The cat sat on the mat while the dog")
    before = list(tokens.ids)
    change = tokens.append_bytes(b" slept")
    assert change.keep >= len(before) - 1
    assert tokens.ids == byte_level.encode("The cat sat on the mat while the dog slept")


def test_own_tokens_are_kept_as_given(byte_level: TokenText) -> None:
    tokens = IncrementalTokens(byte_level)
    odd = [byte_level.ids[char] for char in (b" ", b"c", b"a", b"t")]  # the tokenizer would use " cat"
    assert byte_level.encode(" cat") != odd
    for token_id in odd:
        tokens.append_token(token_id)
    assert tokens.ids == odd
