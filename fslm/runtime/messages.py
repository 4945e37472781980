"""Helpers for one-paragraph user-facing error messages."""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """`ErrorType: first line of the message`, for quoting a lower-level error inside our own message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
