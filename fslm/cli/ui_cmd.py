"""`fslm ui`: serve the web viewer of recorded runs until Ctrl-C."""

import argparse
import webbrowser

from rich.console import Console


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ui", help="browse recorded runs in a local web viewer")
    parser.add_argument("--store", help="run store file (default: $FSLM_STORE or the per-user store)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765; 0: any free)")
    parser.add_argument("--open", action="store_true", help="open the viewer in the default web browser")
    parser.set_defaults(handler=ui)


def ui(args: argparse.Namespace) -> int:
    from fslm.store import open_store
    from fslm.ui import make_server

    server = make_server(open_store(args.store), args.host, args.port)
    console = Console(highlight=False)
    console.print(f"viewing runs of {server.store.path or 'an in-memory store'} at {server.url}  (Ctrl-C stops)")
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()
    return 0
