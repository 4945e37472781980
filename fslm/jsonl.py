"""JSON Lines input: each non-blank line parsed, with its line number for error messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fslm.errors import FslmError


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise FslmError(f"cannot read {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise FslmError(f"{path} is not UTF-8 text ({error.reason})") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise FslmError(f"{path}:{number}: not valid JSON ({error.msg})") from error
