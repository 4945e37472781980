"""Turning a request into the exact text and token ids the model sees."""

from __future__ import annotations

from typing import Any

from fslm.errors import FslmError
from fslm.runtime.types import GenerationRequest


def prompt_text(tokenizer: Any, prompt: str, system: str | None, chat_template: bool) -> tuple[str, bool]:
    """The text fed to the model, and whether the chat template wrote it.

    With `chat_template` (and a tokenizer that has one), the prompt becomes a user message after an optional
    system message, followed by the assistant generation prompt. A tokenizer without a chat template (a base
    model) gets the raw prompt.
    """
    if not (chat_template and bool(getattr(tokenizer, "chat_template", None))):
        return prompt, False
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), True


def encode_prompt(tokenizer: Any, request: GenerationRequest) -> tuple[str, list[int]]:
    """The text fed to the model (see `prompt_text`; the result shows whether a chat template applied) and its
    token ids."""
    text, templated = prompt_text(tokenizer, request.prompt, request.system, request.chat_template)
    # A chat template writes its own special tokens (BOS included); adding them again would double them.
    ids = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    if not ids:
        raise FslmError(
            f"The prompt for model handle {request.model!r} is empty, so there is nothing to continue."
        )
    return text, list(ids)
