"""A data record's options and its gold answer, read the same way by `fslm eval` and by fine-tuning a
choices stage: the answer is the gold option's text, or its index from 0 as a JSON integer."""

from __future__ import annotations

from typing import Any

from fslm.errors import FslmError


def record_options(where: str, field: str, record: dict[str, Any], hint: str) -> list[str]:
    """The options a data record lists in `field`; `hint` says how to name another field."""
    if field not in record:
        raise FslmError(
            f"{where} has no options field {field!r} (its fields: {', '.join(record) or 'none'}); {hint}"
        )
    value = record[field]
    if not isinstance(value, list):
        raise FslmError(
            f"{where}: its options field {field!r} is {type(value).__name__}, not a list of texts"
        )
    for index, option in enumerate(value):
        if not isinstance(option, str):
            raise FslmError(
                f"{where}: option {index} of its options field {field!r} is {type(option).__name__}, not text"
            )
        if not option:
            raise FslmError(
                f"{where}: option {index} of its options field {field!r} is empty; acc_norm divides an "
                "option's score by its length in bytes"
            )
    if len(set(value)) < 2:
        held = "no options" if not value else f"one option ({value[0]!r})"
        raise FslmError(f"{where}: its options field {field!r} holds {held}; a choice needs at least two")
    return value


def gold_option(where: str, answer_field: str, answer: Any, options: list[str]) -> str:
    """The gold option's text, from its text or its index from 0 (a JSON integer)."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(options):
            return options[answer]
        raise FslmError(
            f"{where}: answer {answer} (field {answer_field!r}) is not an option's index: there are "
            f"{len(options)} options, indexed 0 to {len(options) - 1}"
        )
    if isinstance(answer, str) and answer in options:
        return answer
    raise FslmError(
        f"{where}: answer {answer!r} (field {answer_field!r}) is not among its options "
        f"({', '.join(map(repr, options[:10]))}); give the gold option's text or its index from 0"
    )
