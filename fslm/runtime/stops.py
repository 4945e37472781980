"""The stop-string rule, shared by every decoder: generation ends at the first stop string in the decoded
completion, and the text returned is cut before it."""

from __future__ import annotations


def stop_index(text: str, stops: tuple[str, ...]) -> int | None:
    """Where the earliest stop string begins in `text`, or None when none occurs.

    The search runs on the decoded text, not on token ids, so a stop string split across tokens is found
    once its last piece is decoded. An empty stop string matches nothing (it would otherwise end every
    completion before its first token)."""
    found = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return min(found) if found else None


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """`text` up to its earliest stop string; all of it when none occurs."""
    cut = stop_index(text, stops)
    return text if cut is None else text[:cut]
