"""How `fslm runs show` and the viewer print a choice stage's record: one row per option."""

from __future__ import annotations

from fslm.nodes.choices.record import ChoicesRecord
from fslm.spec.kind_hooks import Column, RecordTable

SHOWN_OPTIONS = 10  # beyond this many options, the table lists the most probable ones and counts the rest


def choices_table(record: ChoicesRecord) -> RecordTable:
    """The options, the chosen one marked: its label when the stage has a verbalizer, each model's score
    (with its log P and tokens when one model scored alone, a mark on each model's own pick when several did;
    "≤" on a bound a best-first search left) and the probability the stage chose by."""
    labels = record.get("labels")
    scorers = record["scorers"]
    weights = record.get("weights")
    pruned = set(record.get("pruned", []))
    columns = [Column(""), *([Column("label")] if labels else []), Column("option")]
    if len(scorers) == 1:
        columns += [Column("log P", numeric=True), Column("tokens", numeric=True)]
    for index, scorer in enumerate(scorers):
        weight = f" ×{weights[index]:.2f}" if weights else ""
        columns.append(Column(f"{scorer['model']} {record['normalize']}{weight}", numeric=True))
    columns.append(Column("p", numeric=True))
    shown = list(range(len(record["options"])))
    if len(shown) > SHOWN_OPTIONS:
        shown = sorted(shown, key=lambda index: -record["probabilities"][index])[:SHOWN_OPTIONS]
    rows = []
    for index in shown:
        bound = "≤ " if index in pruned else ""
        cells = ["✓" if index == record["chosen"] else ""]
        if labels:
            cells.append(labels[index])
        cells.append(record["options"][index])
        if len(scorers) == 1:
            cells += [f"{bound}{scorers[0]['logprobs'][index]:.3f}", str(scorers[0]["tokens"][index])]
        for scorer in scorers:
            picked = " ✓" if len(scorers) > 1 and scorer["chosen"] == index else ""
            cells.append(f"{bound}{scorer['scores'][index]:.3f}{picked}")
        cells.append(f"{record['probabilities'][index]:.2f}")
        rows.append(tuple(cells))
    notes = []
    if len(shown) < len(record["options"]):
        notes.append(f"… {len(record['options']) - len(shown)} less probable options not shown")
    abstained = record.get("abstained")
    if abstained is not None:
        notes.append(
            f"abstained: the pick's p {record['probabilities'][record['chosen']]:.2f} is below "
            f"{abstained['below']:g}, so the stage wrote {abstained['answer']!r}"
        )
    if pruned:
        notes.append(
            f"best-first search: {len(pruned)} options pruned at the bound shown (≤), not scored whole"
        )
    return RecordTable(
        tuple(columns), tuple(rows), chosen=(shown.index(record["chosen"]),), notes=tuple(notes)
    )
