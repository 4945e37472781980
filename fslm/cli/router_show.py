"""How `fslm runs show` displays a router stage's choice: one row per expert."""

from rich.console import Group
from rich.table import Table
from rich.text import Text

from fslm.cli.show import literal
from fslm.nodes.router.record import RouterRecord


def router_table(record: RouterRecord) -> Group:
    """The method, the expert calls spent and the router's own time; then each expert's probability and the
    score the choice maximised, the chosen one marked."""
    header = f"router: {record['method']} · {record['calls']} expert call(s) · {record['seconds']:.4f}s"
    table = Table(box=None, pad_edge=False, header_style="dim")
    table.add_column("")
    table.add_column("expert")
    table.add_column("p", justify="right")
    table.add_column("score", justify="right")
    for expert, probability, score in zip(
        record["experts"], record["probabilities"], record["scores"], strict=True
    ):
        chosen = expert == record["chosen"]
        cells: list[Text | str] = [
            "✓" if chosen else "",
            literal(expert),
            f"{probability:.2f}",
            f"{score:.3f}",
        ]
        table.add_row(*cells, style="bold" if chosen else "")
    return Group(Text(header, style="dim"), table)
