"""Rich renderings of what stages said, shared by the commands that show runs, and the one way to print user
text.

Rich reads `[...]` as markup and `:name:` as an emoji code, and a terminal acts on control characters. Text
from users, files, models and the run store goes through `literal` (a Text) or `escaped` (inside markup), on a
console from `console()`, so it prints exactly as it is.
"""

import json
import re

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fslm.graph import StageMessage
from fslm.graph.state import EnsembleRecord
from fslm.nodes.choices.record import ChoicesRecord

# C0 and C1 control characters except tab and newline: ESC and CSI would let text steer the terminal.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, emoji=False)


def visible(value: object) -> str:
    """`value` as text, with control characters shown as \\xNN instead of sent to the terminal."""
    return CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))


def literal(value: object, style: str = "") -> Text:
    return Text(visible(value), style=style)


def escaped(value: object) -> str:
    """`value` for use inside a markup string."""
    return escape(visible(value))


def readable_input(run_input: object) -> str:
    """A run's input for people: text as it is; a structured input one `field: value` line per field (text
    values as they are, others as JSON)."""
    if not isinstance(run_input, dict):
        return str(run_input)
    return "\n".join(
        f"{field}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for field, value in run_input.items()
    )


def message_title(message: StageMessage) -> str:
    model = message["model"] + (f" + {message['adapter']}" if message["adapter"] else "")
    edited = "  [yellow]edited[/]" if message.get("edited") else ""
    return (
        f"[bold]{escaped(message['stage'])}[/]  [dim]{escaped(model)} · {message['prompt_tokens']}→"
        f"{message['completion_tokens']} tokens · {message['seconds']:.2f}s[/]{edited}"
    )


SHOWN_OPTIONS = 10  # beyond this many options, a table lists the most probable ones and counts the rest


def choices_table(record: ChoicesRecord) -> Group | Table:
    """A choices stage's options, one row each: the chosen one marked, its label when the stage has a
    verbalizer, each model's score (with its log P and tokens when one model scored alone, a mark on each
    model's own pick) and the probability chosen by. Of many options, the most probable are listed."""
    table = Table(box=None, pad_edge=False, header_style="dim")
    table.add_column("")
    labels = record.get("labels")
    if labels:
        table.add_column("label")
    table.add_column("option")
    scorers = record["scorers"]
    if len(scorers) == 1:
        table.add_column("log P", justify="right")
        table.add_column("tokens", justify="right")
    weights = record.get("weights")
    for index, scorer in enumerate(scorers):
        weight = f" ×{weights[index]:.2f}" if weights else ""
        table.add_column(literal(f"{scorer['model']} {record['normalize']}{weight}"), justify="right")
    table.add_column("p", justify="right")
    shown = range(len(record["options"]))
    if len(shown) > SHOWN_OPTIONS:
        shown = sorted(shown, key=lambda index: -record["probabilities"][index])[:SHOWN_OPTIONS]
    for index in shown:
        cells: list[Text | str] = ["✓" if index == record["chosen"] else ""]
        if labels:
            cells.append(literal(labels[index]))
        cells.append(literal(record["options"][index]))
        if len(scorers) == 1:
            bound = "≤ " if index in record.get("pruned", []) else ""
            cells += [f"{bound}{scorers[0]['logprobs'][index]:.3f}", str(scorers[0]["tokens"][index])]
        for scorer in scorers:
            picked = " ✓" if len(scorers) > 1 and scorer["chosen"] == index else ""
            cells.append(f"{scorer['scores'][index]:.3f}{picked}")
        cells.append(f"{record['probabilities'][index]:.2f}")
        table.add_row(*cells, style="bold" if index == record["chosen"] else "")
    notes = []
    hidden = len(record["options"]) - len(shown)
    if hidden:
        notes.append(f"… {hidden} less probable options not shown")
    if record.get("pruned"):
        notes.append(
            f"best-first search: {len(record['pruned'])} options pruned at the bound shown (≤), "
            "not scored whole"
        )
    return Group(table, *(Text(note, style="dim") for note in notes)) if notes else table


def vote_table(record: EnsembleRecord) -> Group:
    """A token-by-token vote (UniTE, boost): the steps and disagreements, then each member's own first token
    and, for a boost stage, its weight."""
    header = f"vote: {record['steps']} steps, members disagreed on {record['disagreements']}"
    table = Table(box=None, pad_edge=False, header_style="dim")
    table.add_column("member")
    table.add_column("first token alone")
    weights = record.get("weights")
    if weights:
        table.add_column("weight", justify="right")
    for index, member in enumerate(record["members"]):
        cells: list[Text | str] = [literal(member), literal(repr(record["first_tokens"][index]))]
        if weights:
            cells.append(f"{weights[index]:.2f}")
        table.add_row(*cells)
    return Group(Text(header, style="dim"), table)


def print_message(out: Console, message: StageMessage, show_prompt: bool = False) -> None:
    if show_prompt:
        title = f"prompt to {escaped(message['stage'])}"
        out.print(Panel(literal(message["prompt"]), title=title, border_style="dim"))
    body: RenderableType = literal(message["text"])
    if "choices" in message:
        body = Group(body, choices_table(message["choices"]))
    if "ensemble" in message:
        body = Group(body, vote_table(message["ensemble"]))
    if "router" in message:
        from fslm.cli.router_show import router_table  # it imports this module

        body = Group(body, router_table(message["router"]))
    out.print(Panel(body, title=message_title(message), title_align="left"))
