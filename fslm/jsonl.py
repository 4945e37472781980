"""JSON Lines input: each non-blank line parsed, with its line number for error messages.

Lines end at `\\n` only (a `\\r` before it is dropped). `str.splitlines()` would also break at U+2028, U+0085,
form feeds and the like, which JSON allows inside strings and real data sets carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fslm.errors import FslmError
from fslm.files import read_text_file

JSON_WHITESPACE = " \t\r"


def json_lines(path: Path, what: str = "data file") -> Iterator[tuple[int, Any]]:
    text = read_text_file(path, what, encoding="utf-8-sig")  # a leading byte-order mark is not data
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(JSON_WHITESPACE):
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise FslmError(f"{path}:{number}: not valid JSON ({error.msg})") from error
        except RecursionError as error:
            raise FslmError(f"{path}:{number}: JSON nested too deeply to read") from error
        except ValueError as error:  # an integer past Python's digit limit
            raise FslmError(f"{path}:{number}: not usable JSON ({error})") from error
