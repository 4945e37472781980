"""How `fslm runs show` and the viewer print a router stage's record: one row per expert."""

from __future__ import annotations

from fslm.nodes.router.record import RouterRecord
from fslm.spec.kind_hooks import Column, RecordTable


def router_table(record: RouterRecord) -> RecordTable:
    """The method, the expert calls spent and the router's own time; then each expert's probability and the
    score the choice maximised, the chosen one marked."""
    experts = record["experts"]
    rows = tuple(
        ("✓" if expert == record["chosen"] else "", expert, f"{probability:.2f}", f"{score:.3f}")
        for expert, probability, score in zip(experts, record["probabilities"], record["scores"], strict=True)
    )
    return RecordTable(
        (Column(""), Column("expert"), Column("p", numeric=True), Column("score", numeric=True)),
        rows,
        chosen=(experts.index(record["chosen"]),),
        heading=f"router: {record['method']} · {record['calls']} expert call(s) · {record['seconds']:.4f}s",
    )


def routed_to(record: RouterRecord) -> str:
    return record["chosen"]
