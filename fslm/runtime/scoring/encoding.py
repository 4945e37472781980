"""A score request as token ids, encoded exactly as lm-eval-harness encodes a (context, continuation) pair.

lm-eval (`TemplateLM._encode_pair`, causal models) moves the context's trailing whitespace onto the
continuation, encodes the context and the whole text, and takes the whole encoding's tokens after the
context's length as the continuation; the model then reads the context's own tokens followed by those. Where
a tokenizer merges across the boundary the two differ from the whole encoding, and lm-eval's choice is what
fslm scores too, so that its numbers are lm-eval's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fslm.errors import FslmError
from fslm.runtime.prompt import prompt_text
from fslm.runtime.scoring.types import ScoreRequest


@dataclass(frozen=True)
class EncodedRequest:
    context_text: str  # the model's input text before the options (after the chat template)
    context_ids: tuple[int, ...]
    continuation_ids: tuple[tuple[int, ...], ...]  # one per continuation, each at least one token


def encode_request(tokenizer: Any, request: ScoreRequest, max_length: int | None) -> EncodedRequest:
    """The context and each continuation as token ids. An empty prompt, a continuation that adds no tokens or
    one the tokenizer cannot encode, and a context plus continuation longer than `max_length` tokens (the
    model's context; None: no limit) are the request's errors: nothing is truncated."""
    text, templated = prompt_text(tokenizer, request.prompt, request.system, request.chat_template)
    context = text.rstrip()
    moved = text[len(context) :]

    def encode(value: str) -> list[int]:
        bos = getattr(tokenizer, "bos_token", None)
        # A chat template writes its own special tokens; lm-eval also adds none to text that starts with BOS.
        add_special_tokens = not templated and not (bos and value.startswith(bos))
        return list(tokenizer(value, add_special_tokens=add_special_tokens)["input_ids"])

    context_ids = encode(context)
    if not context or not context_ids:
        raise FslmError(
            f"The prompt for model handle {request.model!r} is empty, so there is nothing to score the "
            "options after."
        )
    continuations = []
    for index, continuation in enumerate(request.continuations):
        tail = encode(context + moved + continuation)[len(context_ids) :]
        _check_continuation(tokenizer, request, index, tail, len(context_ids), max_length)
        continuations.append(tuple(tail))
    return EncodedRequest(text, tuple(context_ids), tuple(continuations))


def _check_continuation(
    tokenizer: Any,
    request: ScoreRequest,
    index: int,
    tail: list[int],
    context_tokens: int,
    max_length: int | None,
) -> None:
    what = f"option {index + 1} ({_shown(request.continuations[index])})"
    if not tail:
        raise FslmError(f"{what} adds no tokens to the prompt, so it has nothing to score.")
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is not None and unknown in tail:
        raise FslmError(
            f"{what} cannot be encoded by the tokenizer of model handle {request.model!r}: part of it "
            f"becomes the unknown token {tokenizer.unk_token!r}, so its likelihood would not be the text's."
        )
    # The model reads the context and every continuation token but the last (lm-eval's input[:-1]).
    length = context_tokens + len(tail) - 1
    if max_length is not None and length > max_length:
        raise FslmError(
            f"{what} with the prompt is {context_tokens + len(tail)} tokens ({context_tokens} of prompt), "
            f"longer than the {max_length}-token context of model handle {request.model!r}; fslm does not "
            "truncate what it scores: shorten the prompt or the option."
        )


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
