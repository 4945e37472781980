"""Problems found in a pipeline file, and the error that carries all of them at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fslm.errors import FslmError

# Past this many problems a file is checked no further (its checks can cost a comparison per name), and
# only this many are shown.
MOST_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pipeline: where it is (file and 1-based line, when known) and what it is."""

    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = display_path(self.file)
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


class SpecError(FslmError):
    """A pipeline file (or a stage file it uses) is invalid; `problems` lists everything found, in file
    order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = _in_reading_order(problems)
        shown = [str(problem) for problem in self.problems[:MOST_PROBLEMS]]
        if len(self.problems) >= MOST_PROBLEMS:
            shown.append(
                f"… the first {MOST_PROBLEMS} problems are shown (checking stops there); fix these first"
            )
        super().__init__("\n".join(shown))


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (shorter to read), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _in_reading_order(problems: Iterable[Problem]) -> list[Problem]:
    """Without duplicates, grouped by file (in the order the files were first mentioned), then by line."""
    unique = list(dict.fromkeys(problems))
    file_rank: dict[Path, int] = {}
    for problem in unique:
        file_rank.setdefault(problem.file, len(file_rank))
    return sorted(unique, key=lambda problem: (file_rank[problem.file], problem.line or 0))
