"""Measuring ensemble candidates on a dev set: each one's score, answer length and vocabulary.

Behind `fslm ensemble check`. Candidates are model handles of a `Runtime`; each one answers every item in
batched generation (`Runtime.generate`), scored with the metrics of `fslm.eval.metrics`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fslm.errors import FslmError
from fslm.eval.ensemble_determine import CandidateResult
from fslm.eval.items import EvalItem
from fslm.eval.metrics import METRICS, score
from fslm.runtime.types import GenerationParams, GenerationRequest, ModelRef
from fslm.spec.templates import compile_template, render_template

if TYPE_CHECKING:
    from fslm.runtime import Runtime
    from fslm.spec import PipelineSpec

DEFAULT_PROMPT = "Question: {{ input }}\nAnswer:"


def parse_candidates(members: str) -> list[str]:
    """`a,b,c` → the names, refusing fewer than two and names given twice."""
    names = [name.strip() for name in members.split(",") if name.strip()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FslmError(f"--members names {', '.join(repeated)} more than once; list each candidate once.")
    if len(names) < 2:
        raise FslmError(
            f"--members needs at least two candidates to compare, separated by commas (got {len(names)}), "
            "e.g. --members smollm2-135m-instruct,gemma3-270m."
        )
    return names


def candidate_models(names: Sequence[str], pipeline: PipelineSpec | None, dtype: str) -> dict[str, ModelRef]:
    """The runtime's model handles: a pipeline's `models:` entries by handle, or else each name as a model
    source (a builtin alias, a local model directory or .gguf file, a hub id) loaded with `dtype`."""
    if pipeline is None:
        return {name: ModelRef(name, dtype) for name in names}
    unknown = [name for name in names if name not in pipeline.models]
    if unknown:
        hints = [
            f"{name!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(name, pipeline.models, 1))
            else repr(name)
            for name in unknown
        ]
        raise FslmError(
            f"{pipeline.path} has no model handle {', '.join(hints)}; its handles: "
            f"{', '.join(pipeline.models)}. With --pipeline, --members names handles of its `models:` block."
        )
    return {
        name: ModelRef(model.source, model.dtype, model.revision)
        for name, model in pipeline.models.items()
        if name in names
    }


def render_prompts(template: str, items: Sequence[EvalItem]) -> list[str]:
    what = "The prompt template (it may use {{ input }}, the item's input)"
    compiled = compile_template(template, what)
    return [render_template(compiled, {"input": item.input}, what) for item in items]


def load_candidates(runtime: Runtime, names: Sequence[str]) -> None:
    """Load every candidate now, so that a bad one fails before any generation starts."""
    for name in names:
        try:
            runtime.base_for(name)
        except FslmError as error:
            raise FslmError(f"Candidate {name!r} could not be loaded: {error}") from error


def measure_candidates(
    runtime: Runtime,
    names: Sequence[str],
    items: Sequence[EvalItem],
    metric: str,
    prompts: Sequence[str],
    params: GenerationParams,
    chat_template: bool = False,
    on_candidate: Callable[[str], None] | None = None,
) -> list[CandidateResult]:
    """Each candidate's mean `metric` score, mean answer length and vocabulary on `items`."""
    from fslm.runtime.ensemble import token_text_for

    if metric not in METRICS:
        raise FslmError(f"unknown metric '{metric}'; metrics: {', '.join(METRICS)}")
    results = []
    for name in names:
        if on_candidate is not None:
            on_candidate(name)
        requests = [
            GenerationRequest(name, prompt, chat_template=chat_template, params=params) for prompt in prompts
        ]
        answers = [generation.text for generation in runtime.generate(requests)]
        keys = token_text_for(runtime.base_for(name)).keys
        results.append(
            CandidateResult(
                name=name,
                score=sum(
                    score(metric, answer, item.reference) for answer, item in zip(answers, items, strict=True)
                )
                / len(items),
                answer_chars=sum(len(answer) for answer in answers) / len(answers),
                vocabulary=frozenset(key for key in keys if isinstance(key, bytes)),
            )
        )
    return results
