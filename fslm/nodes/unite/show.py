"""How `fslm runs show` and the viewer print a token-by-token vote (UniTE, boost)."""

from __future__ import annotations

from fslm.nodes.unite.record import EnsembleRecord
from fslm.spec.kind_hooks import Column, MessageRecord, RecordTable


def vote_table(record: EnsembleRecord) -> RecordTable:
    """The steps and disagreements, then each member's own first token and, for a boost stage, its weight."""
    weights = record.get("weights")
    columns = (
        Column("member"),
        Column("first token alone"),
        *([Column("weight", numeric=True)] if weights else []),
    )
    rows = tuple(
        (member, repr(record["first_tokens"][index]), *([f"{weights[index]:.2f}"] if weights else []))
        for index, member in enumerate(record["members"])
    )
    heading = f"vote: {record['steps']} steps, members disagreed on {record['disagreements']}"
    return RecordTable(columns, rows, heading=heading)


VOTE_RECORD = MessageRecord("ensemble", EnsembleRecord, vote_table)
