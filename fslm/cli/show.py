"""Rich renderings of what stages said, shared by the commands that show runs."""

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from fslm.graph import StageMessage


def message_title(message: StageMessage) -> str:
    model = message["model"] + (f" + {message['adapter']}" if message["adapter"] else "")
    edited = "  [yellow]edited[/]" if message.get("edited") else ""
    return (
        f"[bold]{escape(message['stage'])}[/]  [dim]{escape(model)} · {message['prompt_tokens']}→"
        f"{message['completion_tokens']} tokens · {message['seconds']:.2f}s[/]{edited}"
    )


def print_message(console: Console, message: StageMessage, show_prompt: bool = False) -> None:
    if show_prompt:
        console.print(Panel(Text(message["prompt"]), title=f"prompt to {message['stage']}", border_style="dim"))
    console.print(Panel(Text(message["text"]), title=message_title(message), title_align="left"))
