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
from fslm.spec.kind_hooks import RecordTable
from fslm.spec.kinds import message_tables

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


def record_table(table: RecordTable) -> RenderableType:
    """A kind's record (fslm/spec/kind_hooks.py) as rich prints it: its heading, the table with the chosen
    rows bold, then its notes."""
    grid = Table(box=None, pad_edge=False, header_style="dim")
    for column in table.columns:
        grid.add_column(literal(column.title), justify="right" if column.numeric else "left")
    for index, row in enumerate(table.rows):
        grid.add_row(*(literal(cell) for cell in row), style="bold" if index in table.chosen else "")
    heading = [literal(table.heading, style="dim")] if table.heading else []
    notes = [literal(note, style="dim") for note in table.notes]
    return Group(*heading, grid, *notes) if heading or notes else grid


def print_message(out: Console, message: StageMessage, show_prompt: bool = False) -> None:
    if show_prompt:
        title = f"prompt to {escaped(message['stage'])}"
        out.print(Panel(literal(message["prompt"]), title=title, border_style="dim"))
    tables = [record_table(table) for table in message_tables(message)]
    body = Group(literal(message["text"]), *tables) if tables else literal(message["text"])
    out.print(Panel(body, title=message_title(message), title_align="left"))
