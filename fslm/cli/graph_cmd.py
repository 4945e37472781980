"""`fslm graph PIPELINE`: print the pipeline's graph as Mermaid."""

import argparse

from fslm.spec import load_spec


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("graph", help="print the pipeline graph as Mermaid")
    parser.add_argument("pipeline", help="pipeline YAML file")
    parser.set_defaults(handler=graph)


def graph(args: argparse.Namespace) -> int:
    from fslm.graph.build import build_graph

    spec = load_spec(args.pipeline)

    def never_called(request):
        raise AssertionError("drawing a graph generates nothing")

    print(build_graph(spec, never_called).compile().get_graph().draw_mermaid(with_styles=False))
    return 0
