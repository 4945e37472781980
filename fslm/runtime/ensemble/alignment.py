"""Token alignment across tokenizers: what each token stands for, as bytes, and each member's own tokens for
a growing text.

Byte-level BPE (GPT-2, SmolLM2) writes bytes as printable characters (`Ġ` for a space, `Ċ` for a newline);
sentencepiece-style tokenizers (Llama, Gemma) write a space as `▁` and fall back to byte tokens such as
`<0x0A>`. Both are mapped here to the raw bytes of the text, which is the common ground for matching tokens
across vocabularies. Appended text is re-tokenized per member from the last safe boundary only.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
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
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
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


def continues_utf8(text: bytearray, key: TokenKey) -> bool:
    """Whether `text` followed by `key` is still UTF-8 (possibly waiting for the rest of a character)."""
    if not isinstance(key, bytes):
        return True
    _, incomplete = split_incomplete_utf8(bytes(text[-3:]))
    try:
        codecs.getincrementaldecoder("utf-8")().decode(incomplete + key, final=False)
    except UnicodeDecodeError:
        return False
    return True


def key_text(key: TokenKey) -> str:
    """A key as readable text for the run record."""
    if key == EOS:
        return "<eos>"
    if isinstance(key, Special):
        return key.content
    return key.decode(errors="replace")


@dataclass(frozen=True)
class Change:
    """How a member's completion tokens changed: keep the first `keep`, then add `added`."""

    keep: int
    added: list[int]


@dataclass
class IncrementalTokens:
    """The completion as one member's tokens, kept equal to what encoding the whole completion would give.

    Text is appended either as one of the member's own tokens (taken as is, like a model's own decoding) or
    as bytes, which are re-tokenized together with the unstable tail: the tokens after the last safe
    boundary. A boundary is safe when a word-initial token (it starts with whitespace) follows a token that
    ends inside a word; pre-tokenizers split there, so tokens before it cannot change. If re-tokenizing
    moves the boundary's first token after all, the tail is widened to the boundary before it.
    """

    text: TokenText
    ids: list[int] = field(default_factory=list)
    pending: bytes = b""  # the start of a character whose other bytes have not arrived yet

    def append_token(self, token_id: int) -> Change:
        if self.pending:
            return self.append_bytes(self._bytes_of(token_id))
        self.ids.append(token_id)
        return Change(len(self.ids) - 1, [token_id])

    def append_bytes(self, data: bytes) -> Change:
        floor = self._after_last_special()
        boundaries = self._boundaries(floor)
        while True:
            start = boundaries.pop() if boundaries else floor
            tail_text, pending = split_incomplete_utf8(
                b"".join(self._bytes_of(token_id) for token_id in self.ids[start:]) + self.pending + data
            )
            retokenized = self.text.encode(tail_text) if tail_text else []
            moved = start < len(self.ids) and retokenized[:1] != self.ids[start : start + 1]
            if not moved or start == floor:
                break
        keep = start
        while (
            keep - start < len(retokenized)
            and keep < len(self.ids)
            and self.ids[keep] == retokenized[keep - start]
        ):
            keep += 1
        added = retokenized[keep - start :]
        self.ids[keep:] = added
        self.pending = pending
        return Change(keep, added)

    def _bytes_of(self, token_id: int) -> bytes:
        key = self.text.keys[token_id]
        return b"" if isinstance(key, Special) else key

    def _after_last_special(self) -> int:
        for index in range(len(self.ids) - 1, -1, -1):
            if isinstance(self.text.keys[self.ids[index]], Special):
                return index + 1
        return 0

    def _boundaries(self, floor: int) -> list[int]:
        """Safe boundaries from `floor` up to the last token, ascending; the last token is always in the
        tail."""
        last = len(self.ids) - 1
        return [
            index
            for index in range(floor + 1, last + 1)
            if self.text.starts_word(self.ids[index]) and self.text.ends_in_word(self.ids[index - 1])
        ]
