"""`fslm ui`: serve the web viewer of recorded runs until Ctrl-C."""

import argparse
import webbrowser

from rich.console import Console
from rich.markup import escape

from fslm.cli.common_args import add_store_argument


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ui", help="browse recorded runs in a local web viewer")
    add_store_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on (default: 8765; 0: any free)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help=(
            "allow a --host that other machines can reach "
            "(anyone with the printed address can read every run)"
        ),
    )
    parser.add_argument("--open", action="store_true", help="open the viewer in the default web browser")
    parser.set_defaults(handler=ui)


def ui(args: argparse.Namespace) -> int:
    from fslm.store import open_store
    from fslm.ui import make_server

    store = open_store(args.store, read_only=True)
    server = make_server(store, args.host, args.port, allow_remote=args.allow_remote)
    console = Console(highlight=False)
    if not server.is_loopback():
        console.print(
            f"[bold yellow]warning:[/] the viewer listens on {escape(args.host)}: other machines can "
            "connect. Anyone who has the address below, token included, can read every run in the store; "
            "the connection is plain HTTP, not encrypted.",
            soft_wrap=True,
        )
    console.print(
        f"viewing runs of {escape(store.where)} at {escape(server.url)}  (Ctrl-C stops)", soft_wrap=True
    )
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()
    return 0
