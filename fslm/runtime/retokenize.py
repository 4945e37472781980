"""A member's own tokens for a growing text: appended text is re-tokenized from the last safe boundary only."""

from __future__ import annotations

from dataclasses import dataclass, field

from fslm.runtime.token_text import Special, TokenText, split_incomplete_utf8


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
        while keep - start < len(retokenized) and keep < len(self.ids) and self.ids[keep] == retokenized[keep - start]:
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
        """Safe boundaries from `floor` up to the last token, ascending; the last token is always in the tail."""
        last = len(self.ids) - 1
        return [
            index
            for index in range(floor + 1, last + 1)
            if self.text.starts_word(self.ids[index]) and self.text.ends_in_word(self.ids[index - 1])
        ]
