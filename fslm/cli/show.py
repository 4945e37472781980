"""Rich renderings of what stages said, shared by the commands that show runs, and the one way to print user
text.

Rich reads `[...]` as markup and `:name:` as an emoji code, and a terminal acts on control characters. Text
from users, files, models and the run store goes through `literal` (a Text) or `escaped` (inside markup), on a
console from `console()`, so it prints exactly as it is.
"""

import json
import re

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from fslm.graph import StageMessage

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


def print_message(out: Console, message: StageMessage, show_prompt: bool = False) -> None:
    if show_prompt:
        title = f"prompt to {escaped(message['stage'])}"
        out.print(Panel(literal(message["prompt"]), title=title, border_style="dim"))
    out.print(Panel(literal(message["text"]), title=message_title(message), title_align="left"))
