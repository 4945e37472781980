"""The `choices` kind's YAML keys: the options, how each is appended to the prompt, how scores are normalised,
and the model (or ensemble) that scores them; and the kind's checks against the pipeline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fslm.nodes.stage.spec import check_stage
from fslm.nodes.unite.spec import EnsembleSpec, check_ensemble
from fslm.spec.kinds import StageChecks
from fslm.spec.models import StageSpecBase, StrictModel

CHOICE_VARIABLE = "choice"  # what the continuation template calls the option it appends
DEFAULT_CONTINUATION = " {{ choice }}"
Normalize = Literal["none", "token", "byte"]
_FIELD_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_YAML_BOOLEANS = "YAML reads unquoted yes, no, on, off, true and false as booleans: quote them ('yes')"


class AbstainSpec(StrictModel):
    """When a choices stage writes a fixed answer instead of its pick: the pick is too unlikely."""

    below: float = Field(
        gt=0,
        lt=1,
        description="The pick's probability over the options below which the stage abstains (0 to 1, "
        "exclusive).",
    )
    answer: str = Field(
        description="What the stage writes when it abstains, for example `oos` or `none of these`; it may "
        "be one of the stage's labels or options or another text."
    )

    @field_validator("answer")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the abstain answer is empty")
        return value


class ChoiceStageSpec(StageSpecBase):
    """A stage that picks one of its options by the likelihood a model (or an ensemble) gives each."""

    kind: ClassVar[str] = "choices"

    choices: str | list[str] | dict[str, str] = Field(
        description=(
            "Makes a choices stage (see docs/choices.md): the options, a list of at least two distinct "
            "texts, a list field of a structured input written exactly `{{ name }}` (declared in "
            "`inputs:`), or a mapping of labels to the texts the model scores (a verbalizer: "
            "`{card_arrival: card arrival}`). The stage writes the option it picks (a mapping's label); its "
            "`chat_template` defaults to false."
        )
    )
    model: str | None = Field(
        None, description="The model handle (a key of `models`) that scores the options; or give `ensemble`."
    )
    adapter: Path | None = Field(
        None,
        description="A peft (LoRA) adapter directory for `model`, relative to the directory of the file "
        "that names it.",
    )
    ensemble: EnsembleSpec | None = Field(
        None,
        description=(
            "Instead of `model`: several models serve the stage. They vote token by token on the text it "
            "generates (docs/unite.md), or, in a choices stage, average their probabilities over the options "
            "(docs/choices.md; `top_k` and `primary` do not apply there)."
        ),
    )
    continuation: str = Field(
        DEFAULT_CONTINUATION,
        description=(
            "Choices stage: Jinja2 template of the text scored after the prompt for each option, which it "
            "reads as `{{ choice }}`; it may read what the prompt may read too. Default: ` {{ choice }}`."
        ),
    )
    normalize: Normalize = Field(
        "token",
        description=(
            "Choices stage: how an option's summed log-probability becomes its score: `none` (the sum, "
            "lm-eval's acc), `token` (per token of the continuation; the default) or `byte` (per UTF-8 byte "
            "of the option, lm-eval's acc_norm on ASCII text)."
        ),
    )
    search: Literal["full", "best_first"] = Field(
        "full",
        description=(
            "Choices stage: `full` scores every option; `best_first` finds the option of highest summed "
            "log-probability by a best-first search over the options' tokens, scoring only promising "
            "prefixes (the same pick; exact for `normalize: none` with `model:`, which it requires). The "
            "record keeps the scores it computed and marks the rest pruned."
        ),
    )
    abstain: AbstainSpec | None = Field(
        None,
        description=(
            "Choices stage: write `answer` instead of the pick when the pick's probability over the "
            "options is below `below` (an intent classifier's out-of-scope answer, docs/choices.md). The "
            "record keeps the pick and says the stage abstained."
        ),
    )
    chat_template: bool = Field(
        False,
        description=(
            "Wrap the prompt (and system message) in the model's chat template, options following the "
            "assistant's generation prompt. Off by default for choice stages, as in lm-eval-harness."
        ),
    )

    @field_validator("choices", mode="before")
    @classmethod
    def _a_reference_or_options(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not _FIELD_REFERENCE.fullmatch(value.strip()):
                raise ValueError(
                    "a text 'choices' names one list field of the input, written exactly '{{ name }}'; "
                    "or give a list of options"
                )
            return value
        if isinstance(value, list):
            _check_options(value)
            return value
        if isinstance(value, dict):
            _check_labels(value)
            return value
        raise ValueError("'choices' is a list of options, a mapping of labels to options, or '{{ name }}'")

    @model_validator(mode="after")
    def _model_or_ensemble(self) -> ChoiceStageSpec:
        if (self.model is None) == (self.ensemble is None):
            raise ValueError("a choices stage needs exactly one of 'model' or 'ensemble'")
        if self.search == "best_first" and (self.normalize != "none" or self.ensemble is not None):
            raise ValueError(
                "search: best_first needs normalize: none and one model: a prefix's summed log-probability "
                "bounds its options' sums, but not their per-token or per-byte averages, nor an ensemble's "
                "averaged probabilities"
            )
        return self

    @property
    def choices_field(self) -> str | None:
        """The input field holding the options, or None when the stage lists them itself."""
        if not isinstance(self.choices, str):
            return None
        match = _FIELD_REFERENCE.fullmatch(self.choices.strip())
        assert match is not None  # validated
        return match.group(1)

    @property
    def labels(self) -> list[str] | None:
        """A verbalizer's labels, in option order: what the stage writes for each option; None without one."""
        return list(self.choices) if isinstance(self.choices, dict) else None

    @property
    def listed_options(self) -> list[str] | None:
        """The texts the model scores when the stage lists them itself (a mapping's values); None when an
        input field holds them."""
        if isinstance(self.choices, dict):
            return list(self.choices.values())
        return list(self.choices) if isinstance(self.choices, list) else None


def _check_labels(mapping: dict[Any, Any]) -> None:
    labels = list(mapping)
    if any(isinstance(label, bool) for label in labels):
        raise ValueError(f"the labels {labels!r} hold booleans: {_YAML_BOOLEANS}")
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"every label must be non-empty text (quote numbers): {labels!r}")
    texts = list(mapping.values())
    if any(isinstance(text, bool) for text in texts):
        raise ValueError(f"the options {texts!r} hold booleans: {_YAML_BOOLEANS}")
    if not all(isinstance(text, str) for text in texts):
        raise ValueError(f"every option (a label's text) must be text (quote numbers): {texts!r}")
    if any(not text.strip() for text in texts):
        raise ValueError(f"an option is empty: {mapping!r}")
    if len(texts) < 2:
        raise ValueError("a choice needs at least two options")
    shared = sorted({text for text in texts if texts.count(text) > 1})
    if shared:
        raise ValueError(
            f"labels share an option text, so they could not be told apart: {', '.join(map(repr, shared))}"
        )


def _check_options(options: list[Any]) -> None:
    if any(isinstance(option, bool) for option in options):
        raise ValueError(f"the options {options!r} hold booleans: {_YAML_BOOLEANS}")
    if not all(isinstance(option, str) for option in options):
        raise ValueError(f"every option must be text (quote numbers): {options!r}")
    if any(not option.strip() for option in options):
        raise ValueError("an option is empty")
    if len(options) < 2:
        raise ValueError("a choice needs at least two options")
    repeated = sorted({option for option in options if options.count(option) > 1})
    if repeated:
        raise ValueError(f"options are listed twice: {', '.join(map(repr, repeated))}")


def check_choices(name: str, stage: dict[str, Any], checks: StageChecks) -> None:
    """The model or the ensemble's members as for those kinds; no decoding settings; an input field named
    as the options is declared; the continuation template compiles and appends the option."""
    if stage.get("model") is not None:
        check_stage(name, stage, checks)
    ensemble = stage.get("ensemble")
    if ensemble is not None:
        check_ensemble(name, stage, checks)
    for key in ("top_k", "primary"):
        if isinstance(ensemble, dict) and key in ensemble:
            checks.report(
                ("stages", name, "ensemble", key),
                f"stage {name!r}: ensemble {key!r} applies to generating, not to a choices stage, whose "
                "members each score the whole options",
            )
    if "generation" in stage:
        checks.report(
            ("stages", name, "generation"),
            f"stage {name!r}: a choices stage scores its options and generates nothing, so it takes no "
            "'generation' settings",
        )
        stage.pop("generation")
    choices = stage.get("choices")
    if isinstance(choices, str) and _FIELD_REFERENCE.fullmatch(choices.strip()):
        checks.check_template(name, "choices", choices)
    continuation = stage.get("continuation")
    if isinstance(continuation, str):
        reads = checks.check_template(name, "continuation", continuation, frozenset({CHOICE_VARIABLE}))
        if reads is not None and CHOICE_VARIABLE not in {variable.name for variable in reads}:
            checks.report(
                ("stages", name, "continuation"),
                f"stage {name!r}: the continuation template never uses {{{{ {CHOICE_VARIABLE} }}}}, so every "
                f"option would be scored as the same text (default: {DEFAULT_CONTINUATION!r})",
            )
