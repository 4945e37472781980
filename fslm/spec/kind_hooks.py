"""What a node kind tells the rest of fslm about its runs, so that `fslm runs show`, the viewer and
`fslm eval` handle every kind, a third party's included, without naming any:

- `MessageRecord`: a record the kind's stage messages carry under a key of their own (a choice stage's options
  and scores under `choices`), with the table that shows it and, for a kind that hands runs to other stages,
  the stage it handed this run to;
- `ChoiceOutput`: how `fslm eval` scores a stage whose output is a pick among options.

Plain data and plain functions: no rich, no torch, no LangGraph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Column:
    title: str
    numeric: bool = False  # printed right-aligned


@dataclass(frozen=True)
class RecordTable:
    """A record as a table of text cells: `runs show` prints it with rich, the viewer as HTML."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    chosen: tuple[int, ...] = ()  # rows shown emphasised: the pick
    heading: str = ""  # one line above the table
    notes: tuple[str, ...] = ()  # lines below it

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": [{"title": column.title, "numeric": column.numeric} for column in self.columns],
            "rows": [list(row) for row in self.rows],
            "chosen": list(self.chosen),
            "heading": self.heading,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class MessageRecord:
    """A record a kind's stage messages carry under `key`.

    - `type`: its TypedDict, for readers and the docs;
    - `table`: the record as `runs show` and the viewer print it;
    - `routed_to`: for a kind that hands each run to one of several stages (a router), the stage this record
      says it handed the run to; `fslm eval` breaks scores down by it.
    """

    key: str
    type: type
    table: Callable[[Any], RecordTable]
    routed_to: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class ChoiceOutput:
    """How `fslm eval` scores a stage whose output is one of a set of options, without a --metric.

    - `stage`: the stage's name;
    - `choices_field`: the input field that holds each item's options, or None when the stage lists its own;
    - `answers`: the stage's own answers (the labels it writes, else its options) when it lists them;
    - `metrics`: what `scores` gives, the first the headline (`acc`, then e.g. `acc_norm`);
    - `scores(messages, gold)`: one run's scores from its stage messages, `gold` its right answer as the stage
      writes it; None when the run ended before the stage.
    """

    stage: str
    choices_field: str | None
    answers: Sequence[str]
    metrics: Sequence[str]
    scores: Callable[[Sequence[Mapping[str, Any]], str], dict[str, float] | None] = field(repr=False)
