"""`fslm ensemble check`: score candidates on a dev set, recommend UniTE members (Determine-Then-Ensemble)."""

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fslm.cli.common_args import add_batch_size_argument
from fslm.cli.runtime_args import add_runtime_arguments, runtime_options
from fslm.cli.show import console, escaped
from fslm.errors import FslmError
from fslm.eval.ensemble_determine import DEFAULT_MAX_GAP, DEFAULT_MAX_LENGTH_RATIO, Recommendation
from fslm.eval.metrics import METRICS
from fslm.runtime.types import DTYPES


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ensemble", help="choose the members of an ensemble stage")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    check = verbs.add_parser(
        "check",
        help="score candidates on a dev set and recommend members by the Determine-Then-Ensemble rules",
        description="Each candidate answers every item; the best one starts the ensemble, and every other "
        "candidate within --max-gap score points of it whose answers are within --max-length-ratio of its "
        "answer length joins it. Vocabulary overlap is shown, not used (the paper found it matters little).",
    )
    check.add_argument(
        "--members",
        required=True,
        help="candidates, comma-separated (at least two): model "
        "sources such as smollm2-135m-instruct,gemma3-270m, or with --pipeline its model handles",
    )
    check.add_argument(
        "--pipeline", type=Path, help="take the candidates from this pipeline's `models:` block"
    )
    check.add_argument(
        "--data", type=Path, required=True, help="JSONL, CSV or Parquet with inputs and answers"
    )
    check.add_argument("--metric", required=True, choices=list(METRICS), help="how answers are scored")
    check.add_argument("--field", default="input", help="the input field of --data (default: input)")
    check.add_argument("--answer-field", default="answer", help="the reference field (default: answer)")
    check.add_argument("--limit", type=int, help="only the first N items")
    check.add_argument(
        "--prompt",
        default=None,
        help="prompt template with {{ input }} "
        "(default: 'Question: {{ input }}\\nAnswer:'); \\n and \\t are read as newline and tab",
    )
    check.add_argument("--prompt-file", type=Path, help="read the prompt template from this file instead")
    check.add_argument(
        "--chat-template",
        action="store_true",
        help="wrap the prompt in each candidate's chat template (default: raw prompt)",
    )
    check.add_argument("--max-new-tokens", type=int, default=32, help="most tokens per answer (32)")
    check.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="stop an answer at TEXT (repeatable; default: a newline; '' for none)",
    )
    check.add_argument("--dtype", default="auto", choices=DTYPES, help="weight dtype of model sources (auto)")
    add_batch_size_argument(check, default=16)
    check.add_argument(
        "--max-gap",
        type=float,
        default=DEFAULT_MAX_GAP,
        help=f"largest score gap to the best candidate, in points of a 0-1 score ({DEFAULT_MAX_GAP})",
    )
    check.add_argument(
        "--max-length-ratio",
        type=float,
        default=DEFAULT_MAX_LENGTH_RATIO,
        help=f"largest ratio of mean answer lengths, either way ({DEFAULT_MAX_LENGTH_RATIO:g})",
    )
    add_runtime_arguments(check)
    check.set_defaults(handler=run_check)


def unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")


def prompt_template(args: argparse.Namespace) -> str:
    from fslm.eval.ensemble_check import DEFAULT_PROMPT
    from fslm.files import read_text_file

    if args.prompt is not None and args.prompt_file is not None:
        raise FslmError("Give the prompt either with --prompt or with --prompt-file, not both.")
    if args.prompt_file is not None:
        if not args.prompt_file.exists():
            raise FslmError(f"prompt file {args.prompt_file} does not exist")
        return read_text_file(args.prompt_file, "prompt file")
    return DEFAULT_PROMPT if args.prompt is None else unescape(args.prompt)


def checked_numbers(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 1:
        raise FslmError("--limit must be at least 1")
    if args.max_new_tokens < 1 or args.batch_size < 1:
        raise FslmError("--max-new-tokens and --batch-size must be at least 1")
    if args.max_gap < 0 or args.max_length_ratio < 1:
        raise FslmError("--max-gap must be at least 0 and --max-length-ratio at least 1")


def run_check(args: argparse.Namespace) -> int:
    from fslm.data_files import read_records
    from fslm.eval.ensemble_check import (
        candidate_models,
        load_candidates,
        measure_candidates,
        parse_candidates,
        render_prompts,
    )
    from fslm.eval.ensemble_determine import recommend
    from fslm.eval.items import read_eval_items
    from fslm.runtime import Runtime
    from fslm.runtime.types import GenerationParams
    from fslm.spec import load_spec

    checked_numbers(args)
    options = runtime_options(args)
    names = parse_candidates(args.members)
    models = candidate_models(names, load_spec(args.pipeline) if args.pipeline else None, args.dtype)
    if not read_records(args.data):
        raise FslmError(f"data file {args.data} holds no items")
    items = read_eval_items(args.data, args.field, args.answer_field, args.limit)
    prompts = render_prompts(prompt_template(args), items)
    stops = tuple(unescape(stop) for stop in (args.stop if args.stop is not None else ["\\n"]) if stop)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, stop=stops)
    err = console(stderr=True)
    with Runtime(models, max_batch_size=args.batch_size, **options) as runtime:
        with err.status("loading the candidates"):
            load_candidates(runtime, names)
        with err.status("") as status:
            results = measure_candidates(
                runtime,
                names,
                items,
                args.metric,
                prompts,
                params,
                args.chat_template,
                on_candidate=lambda name: status.update(f"{escaped(name)} answers {len(items)} items"),
            )
    recommendation = recommend(results, args.max_gap, args.max_length_ratio)
    out = Console(highlight=False, markup=False, emoji=False)
    out.print(verdict_table(recommendation, args.metric, len(items)))
    for verdict in recommendation.verdicts:
        out.print(f"{verdict.candidate.name}: {'member' if verdict.chosen else 'left out'}, {verdict.reason}")
    out.print(recommendation.summary())
    if args.pipeline is not None and len(recommendation.members) > 1:
        out.print(f"YAML: ensemble: {{method: unite, members: [{', '.join(recommendation.members)}]}}")
    return 0


def verdict_table(recommendation: Recommendation, metric: str, count: int) -> Table:
    table = Table(title=f"{metric} on {count} items, compared with the best: {recommendation.best.name}")
    table.add_column("candidate", no_wrap=True)
    for header in ("score", "gap", "length ratio", "answer chars", "vocabulary", "overlap"):
        table.add_column(header, justify="right")
    table.add_column("member")
    for verdict in recommendation.verdicts:
        candidate = verdict.candidate
        table.add_row(
            candidate.name,
            f"{candidate.score:.3f}",
            f"{100 * verdict.gap:.1f} pt",
            f"{verdict.length_ratio:.2f}×",
            f"{candidate.answer_chars:.1f}",
            str(len(candidate.vocabulary)),
            f"{100 * verdict.vocabulary_overlap:.0f}%",
            "yes" if verdict.chosen else "no",
        )
    return table
