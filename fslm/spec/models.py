"""Pydantic models of a validated pipeline: what `load_spec` returns and the other layers read.

The descriptions double as the YAML reference (see `schema.py`), so they are written for users.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import re2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fslm.spec.run_input import check_input

END = "END"  # the one reserved target name: the run (or this branch of it) finishes
MAX_SEED = 2**64 - 1  # torch seeds its generators with 64 bits

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class StrictModel(BaseModel):
    # strict: YAML `max_new_tokens: true` or `prompt: 12` is a mistake, not something to coerce;
    # allow_inf_nan: nor is `.nan` or `.inf` for a number
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ModelSpec(StrictModel):
    """A named model handle that stages refer to."""

    source: str = Field(
        description=(
            "Where the weights come from: a builtin alias (e.g. `smollm2-135m-instruct`), a local Hugging "
            "Face model directory or `.gguf` file (relative to the pipeline file's directory; stored "
            "absolute once loaded), or a Hugging Face hub id `org/name`."
        ),
        min_length=1,
    )
    dtype: Dtype = Field(
        "auto",
        description="Weight dtype: auto (bfloat16 on a CUDA GPU, else float32), float32, bfloat16, float16.",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description=(
            "Where the model runs: auto (a CUDA GPU when torch sees one, else Apple MPS, else the CPU), cpu, "
            "cuda, cuda:N or mps. Fine-tuning uses the same choice."
        ),
    )
    revision: str | None = Field(
        None, description="Hub branch, tag or commit to download (hub ids only).", min_length=1
    )


class GenerationSpec(StrictModel):
    """Decoding settings of one stage."""

    max_new_tokens: int = Field(128, ge=1, le=4096, description="Most tokens to generate (1 to 4096).")
    temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="Sampling temperature, 0 to 2; 0 means greedy decoding."
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Nucleus sampling mass, greater than 0 and at most 1."
    )
    stop: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Strings that end generation when produced; the text is cut before the stop string.",
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Random seed for sampling (an integer from 0 to 2^64 - 1)."
    )


class StageSpecBase(StrictModel):
    """What every kind of stage has: a prompt template, how it is sent, and decoding settings.

    Each node kind (see `fslm.spec.kinds`) subclasses this with its own keys; `kind` names the kind."""

    kind: ClassVar[str]

    system: str | None = Field(None, description="System message, plain text (not a template).")
    chat_template: bool = Field(
        True, description="Wrap the prompt (and system message) in the model's chat template."
    )
    prompt: str = Field(
        description=(
            "Jinja2 template of the prompt. It may use `{{ input }}` and the output of any stage that is "
            "sure to have run before this one, by the stage's name. Undefined variables are errors. "
            "Templates run in a sandbox: no includes, imports, macros or `_` names (see docs/concepts.md, "
            "Prompt templates)."
        ),
    )
    generation: GenerationSpec = Field(default_factory=GenerationSpec, description="Decoding settings.")


def first_word_label(text: str) -> str:
    """The label a `label:` case compares with: the first word of `text`, lowercased, outer punctuation
    stripped."""
    words = text.split(maxsplit=1)
    return words[0].strip(string.punctuation).lower() if words else ""


class Case(StrictModel):
    """One branch of a conditional edge. Give exactly one of `label`, `regex` or `equals`."""

    label: str | None = Field(
        None,
        description=(
            "Matches when the first word of the output, lowercased and without surrounding punctuation, "
            "equals this label."
        ),
    )
    regex: str | None = Field(
        None,
        description=(
            "Matches when this regular expression is found in the output. RE2 syntax: Python's without "
            "lookaround (`(?=`, `(?!`, `(?<=`) or backreferences (`\\1`); matching takes time linear in the "
            "output, so no pattern can hang a run."
        ),
    )
    equals: str | None = Field(
        None,
        description=(
            "Matches when the output is exactly this text: for a choices stage, whose output is the option "
            "it picked."
        ),
    )
    to: str = Field(description="The stage to run next when this case matches, or END.")

    @field_validator("label")
    @classmethod
    def _label_can_match(cls, label: str | None) -> str | None:
        if label is not None and first_word_label(label) != label:
            raise ValueError(
                f"label {label!r} can never match: outputs are compared by their first word, lowercased and "
                f"without surrounding punctuation; write {first_word_label(label)!r}"
                if first_word_label(label)
                else f"label {label!r} can never match: it must be one lowercase word"
            )
        return label

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            compiled_regex(regex)
        return regex

    @model_validator(mode="after")
    def _one_test(self) -> Case:
        if [self.label, self.regex, self.equals].count(None) != 2:
            raise ValueError("a case needs exactly one of 'label', 'regex' or 'equals', and 'to'")
        return self

    def matches(self, output: str) -> bool:
        if self.equals is not None:
            return output == self.equals
        if self.label is not None:
            return first_word_label(output) == self.label
        assert self.regex is not None
        return compiled_regex(self.regex).search(output) is not None


@lru_cache(maxsize=256)
def compiled_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2, which matches in time linear in the text: a pattern that would backtrack
    for ever in Python's `re` (`(a+)+$`) cannot hang a run. ValueError for a pattern RE2 refuses."""
    options = re2.Options()
    options.log_errors = False  # else RE2 writes each refused pattern to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args else "cannot be compiled"
        raise ValueError(
            f"invalid regular expression {pattern!r}: {reason} (regex cases use RE2 syntax: no lookaround "
            "or backreferences)"
        ) from None


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


# YAML may give one name or a list of names; the spec always holds a list.
StageNames = Annotated[
    list[str],
    BeforeValidator(_as_list),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    ),
]


class EdgeSpec(StrictModel):
    """A wire between stages: plain (`from` → `to`) or conditional (`from` → first matching `when` case)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    sources: StageNames = Field(
        alias="from",
        min_length=1,
        description=(
            "The stage this edge leaves from, or a list of stages: "
            "the targets then wait for all of them (fan-in)."
        ),
    )
    targets: StageNames = Field(
        default_factory=list,
        alias="to",
        description="The stage to run next, or a list of stages to run in parallel (fan-out), or END.",
    )
    when: list[Case] = Field(
        default_factory=list,
        description="Conditional routing on the output of `from`: the first matching case wins.",
    )
    otherwise: str = Field(END, description="With `when`: where to go when no case matches (default END).")

    @model_validator(mode="after")
    def _plain_or_conditional(self) -> EdgeSpec:
        if self.when:
            if self.targets:
                raise ValueError("an edge has either 'to' or 'when' (with 'otherwise'), not both")
            if len(self.sources) != 1:
                raise ValueError("a conditional edge ('when') must leave from exactly one stage")
        else:
            if not self.targets:
                raise ValueError("an edge needs 'to' (or 'when' cases)")
            if "otherwise" in self.model_fields_set:
                raise ValueError("'otherwise' only applies to a conditional edge with 'when' cases")
        return self

    @property
    def is_conditional(self) -> bool:
        return bool(self.when)

    def next_stages(self) -> list[str]:
        """Every place this edge can lead: its targets, or each case's target and `otherwise` (END
        included)."""
        if self.is_conditional:
            return list(dict.fromkeys([case.to for case in self.when] + [self.otherwise]))
        return list(self.targets)

    def route(self, output: str) -> str:
        """Where a conditional edge sends `output`: the first matching case's target, else `otherwise`."""
        for case in self.when:
            if case.matches(output):
                return case.to
        return self.otherwise


class PipelineSpec(StrictModel):
    """A validated pipeline.

    `edges` is the complete, resolved wiring. A file without `edges:` gets the sequential chain written out
    (first → second → … → last → END). In every spec, each stage has at least one outgoing edge: a stage the
    file leaves without one gets an explicit `{from: stage, to: END}`, appended after the file's edges.
    """

    name: str = Field(description="Pipeline name (defaults to the file name without extension).")
    description: str = Field("", description="What the pipeline does.")
    models: dict[str, ModelSpec] = Field(description="Named model handles.")
    stages: dict[str, SerializeAsAny[StageSpecBase]] = Field(
        description="Stages by name, in file order; each is its kind's spec class."
    )
    edges: list[EdgeSpec] = Field(description="The resolved wiring (see the class docstring).")
    inputs: list[str] = Field(
        default_factory=list, description="The fields a structured input supplies (the file's `inputs:`)."
    )
    input_fields: list[str] = Field(
        default_factory=list,
        description=(
            "The fields a structured (JSON object) input must have: `inputs`, and `input` when a prompt "
            "template reads `{{ input }}`."
        ),
    )
    entry: str = Field(description="The stage that runs first.")
    output: str | None = Field(
        None,
        description="The stage whose text is the run's final output; None means the last message of the run.",
    )
    path: Path = Field(description="Absolute path of the pipeline file.")
    source_hash: str = Field(
        description="sha256 (hex) of the pipeline file's bytes and the stage files it uses."
    )

    def check_input(self, value: object, where: str = "") -> None:
        """Raise FslmError when `value` (text or a JSON object) cannot be a run's input; `where` names the
        item in the message (e.g. "items.jsonl:3: ")."""
        check_input(self, value, where)
