"""`fslm models list|pull`: the builtin models and the converted checkpoints in the cache."""

import argparse

from rich.table import Table

from fslm.cli.show import console, escaped, literal
from fslm.errors import FslmError
from fslm.runtime import BUILTIN_MODELS, cache_root, list_cached


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="list builtin models and cached checkpoints; prepare one")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="builtin aliases and cached checkpoints").set_defaults(handler=list_models)
    pull = verbs.add_parser("pull", help="prepare a builtin model: convert its GGUF file and cache it")
    pull.add_argument("name", help="builtin alias, e.g. smollm2-135m-instruct")
    pull.add_argument(
        "--force", action="store_true", help="convert it again, replacing the cached copy (a damaged one too)"
    )
    pull.set_defaults(handler=pull_model)


def list_models(args: argparse.Namespace) -> int:
    out = console()
    cached = list_cached()
    builtins = Table(title="builtin models")
    builtins.add_column("alias", no_wrap=True)
    for header in ("model", "licence", "ready"):
        builtins.add_column(header)
    for model in BUILTIN_MODELS.values():
        if any(entry.source == model.name for entry in cached):
            ready = "cached"
        elif model.locate(model) is not None:
            ready = "installed, converts on first use"
        else:
            ready = f"not installed: {model.install_command}"
        builtins.add_row(model.name, model.description, model.licence, ready)
    out.print(builtins)
    table = Table(title=literal(f"cached checkpoints in {cache_root()}"))
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("converted from")
    table.add_column("MiB", justify="right")
    for entry in cached:
        table.add_row(literal(entry.name), literal(entry.source), f"{entry.size_bytes / 2**20:.0f}")
    out.print(table)
    return 0


def pull_model(args: argparse.Namespace) -> int:
    if args.name not in BUILTIN_MODELS:
        raise FslmError(f"'{args.name}' is not a builtin model; builtins: {', '.join(BUILTIN_MODELS)}")
    from fslm.runtime import prepare

    with console(stderr=True).status(f"preparing {args.name} (the first conversion takes about 20 s)"):
        path = prepare(args.name, force=args.force)
    console().print(f"{args.name} ready at {escaped(path)}")
    return 0
