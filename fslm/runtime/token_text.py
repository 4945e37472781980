"""What each token of a tokenizer stands for, as bytes, so that different tokenizers can be compared.

Byte-level BPE (GPT-2, SmolLM2) writes bytes as printable characters (`Ġ` for a space, `Ċ` for a newline);
sentencepiece-style tokenizers (Llama, Gemma) write a space as `▁` and fall back to byte tokens such as
`<0x0A>`. Both are mapped here to the raw bytes of the text, which is the common ground for matching tokens
across vocabularies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fslm.errors import FslmError

METASPACE = "▁"
_WHITESPACE = b" \t\n\r"


@dataclass(frozen=True)
class Special:
    """A special token: it stands for no text. All end-of-sequence tokens share one key, EOS."""

    content: str
    is_eos: bool = False


EOS = Special("", is_eos=True)
TokenKey = bytes | Special  # what a token stands for; equal keys are the same token across tokenizers


@lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte, inverted: character → byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_ins = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            stand_ins.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, stand_ins, strict=True)}


def _decoder_kind(tokenizer: Any, name: str) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise FslmError(
            f"The tokenizer of {name} is not a fast (Rust) tokenizer, so its tokens' text cannot be read for "
            "an ensemble. Save it with a tokenizer.json."
        )
    decoder = json.loads(backend.to_str()).get("decoder")
    if decoder is None:
        raise FslmError(
            f"The tokenizer of {name} has no decoder, so fslm cannot tell what text its tokens stand for and "
            "cannot match them with other members' tokens. Give it a decoder (ByteLevel, or Metaspace / "
            "Replace('▁', ' ') with ByteFallback) in its tokenizer.json."
        )
    described = json.dumps(decoder)
    if '"ByteLevel"' in described:
        return "byte_level"
    if '"Metaspace"' in described or METASPACE in described or '"ByteFallback"' in described:
        return "metaspace"
    return "generic"


def _is_byte_piece(piece: str | None) -> bool:
    return (
        piece is not None
        and len(piece) == 6
        and piece.startswith("<0x")
        and piece.endswith(">")
        and all(char in "0123456789ABCDEFabcdef" for char in piece[3:5])
    )


def _metaspace_bytes(piece: str) -> bytes:
    if _is_byte_piece(piece):
        return bytes([int(piece[3:5], 16)])
    return piece.replace(METASPACE, " ").encode()


class TokenText:
    """One tokenizer's tokens as keys, its vocabulary indexed by key, and text encoding without extras."""

    def __init__(self, tokenizer: Any, eos_ids: frozenset[int], name: str) -> None:
        self.tokenizer = tokenizer
        self.name = name
        kind = _decoder_kind(tokenizer, name)
        size = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
        special_ids = {
            token_id for token_id, added in tokenizer.added_tokens_decoder.items() if added.special
        } | set(tokenizer.all_special_ids)
        alphabet = _byte_level_alphabet()
        self.keys: list[TokenKey] = []
        for token_id, piece in enumerate(pieces):
            if token_id in eos_ids:
                self.keys.append(EOS)
            elif token_id in special_ids or piece is None:
                self.keys.append(Special(str(piece)))
            elif kind == "byte_level" and all(char in alphabet for char in piece):
                self.keys.append(bytes(alphabet[char] for char in piece))
            elif kind == "metaspace":
                self.keys.append(_metaspace_bytes(piece))
            else:
                self.keys.append(tokenizer.convert_tokens_to_string([piece]).encode())
        self.ids: dict[TokenKey, int] = {}
        # A key can have several tokens (all EOS ids; "\n" and its byte-fallback "<0x0A>"). The first one
        # stands for all, except that a byte-fallback token comes last: the tokenizer itself never uses it
        # for text it has a piece for.
        fallback = [token_id for token_id, piece in enumerate(pieces) if _is_byte_piece(piece)]
        fallback_ids = set(fallback)
        for token_id in [*(i for i in range(size) if i not in fallback_ids), *fallback]:
            self.ids.setdefault(self.keys[token_id], token_id)
        self._first_piece: dict[bytes, int | None] = {}

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score_id(self, key: TokenKey) -> int | None:
        """The token whose logit scores `key`: the same token if the vocabulary has it, else the first piece
        of this tokenizer's encoding of its text; None when this tokenizer cannot produce it at all."""
        exact = self.ids.get(key)
        if exact is not None or isinstance(key, Special):
            return exact
        if key not in self._first_piece:
            self._first_piece[key] = self._first_word_piece(key)
        return self._first_piece[key]

    def _first_word_piece(self, key: bytes) -> int | None:
        text, _ = split_incomplete_utf8(key)
        ids = self.encode(text) if text else []
        # A bare space (or empty) piece says nothing about the word after it, e.g. Gemma's "▁▁" + "cat"
        # for "  cat"; score the first piece that carries some of the word instead.
        worded = [token_id for token_id in ids if self._has_word(token_id)]
        chosen = worded or [token_id for token_id in ids if self._is_text(token_id) and self.keys[token_id]]
        return chosen[0] if chosen else None

    def _is_text(self, token_id: int) -> bool:
        return isinstance(self.keys[token_id], bytes)

    def _has_word(self, token_id: int) -> bool:
        key = self.keys[token_id]
        return isinstance(key, bytes) and bool(key.strip(_WHITESPACE))

    def starts_word(self, token_id: int) -> bool:
        key = self.keys[token_id]
        return isinstance(key, bytes) and key[:1] in (b" ", b"\n", b"\t", b"\r")

    def ends_in_word(self, token_id: int) -> bool:
        key = self.keys[token_id]
        return isinstance(key, bytes) and bool(key) and key[-1:] not in (b" ", b"\n", b"\t", b"\r")


def split_incomplete_utf8(data: bytes) -> tuple[str, bytes]:
    """`data` as text, and the trailing bytes of a character that is not complete yet (a token may end
    inside a character; its other bytes come with the next token). Invalid bytes elsewhere become U+FFFD."""
    for back in range(1, min(3, len(data)) + 1):
        lead = data[-back]
        if lead < 0x80:
            break
        if lead >= 0xC0:
            needed = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
            if needed > back:
                return data[:-back].decode(errors="replace"), data[-back:]
            break
    return data.decode(errors="replace"), b""
