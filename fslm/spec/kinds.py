"""Node kinds: what a stage can be (one model, an ensemble, …), and the registry that finds them.

A kind is a folder `fslm/nodes/<kind>/` whose `__init__.py` defines `KIND = NodeKind(...)`, and one line in
the `fslm.node_kinds` entry-point group naming it. fslm's own kinds register the same way as third-party ones
(see docs/extending.md), so the spec layer reaches a kind only through this registry, never by import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from fslm.lazy import load_reference
from fslm.spec.kind_hooks import ChoiceOutput, MessageRecord, RecordTable
from fslm.spec.models import StageSpecBase
from fslm.spec.templates import TemplateVariable
from fslm.spec.yaml_source import KeyPath

ENTRY_POINT_GROUP = "fslm.node_kinds"


class StageChecks(Protocol):
    """What a kind's `check` can use: the pipeline around the stage, and a way to report problems."""

    model_handles: set[str]

    def report(self, path: KeyPath, message: str) -> None:
        """A problem at `path` (a key path in the pipeline file, e.g. ("stages", name, "model"))."""

    def check_template(
        self, stage: str, key: str, source: str, provided: frozenset[str] = frozenset()
    ) -> tuple[TemplateVariable, ...] | None:
        """Check a template the stage holds in `key` (other than its prompt, which is always checked) as the
        prompt is: its syntax, and the variables it reads, but `provided` (which the kind supplies), against
        the pipeline's inputs and the stages sure to run before it. The variables it reads, or None when it
        is not a valid template (the problem is reported)."""

    def resolve_adapter(self, stage: str, holder: dict[str, Any], path: KeyPath) -> bool:
        """Make `holder["adapter"]` an absolute Path and report a missing or non-peft directory.
        False when the value is not a path at all (then drop the key)."""

    def resolve_directory(self, stage: str, holder: dict[str, Any], key: str, path: KeyPath) -> Path | None:
        """Make `holder[key]` an absolute Path, relative to the file that names it, and report it when it is
        not a directory. The directory, or None when it is not one (the problem is reported)."""


# `report(path, message)` and `check_stages(name, stage, stages, report)`: see `NodeKind`.
Report = Callable[[KeyPath, str], None]
CheckStages = Callable[[str, StageSpecBase, Mapping[str, StageSpecBase], Report], None]
# `choice_output(name, stage, stages)`: see `NodeKind`.
ChoiceOutputOf = Callable[[str, StageSpecBase, Mapping[str, StageSpecBase]], ChoiceOutput | None]


@dataclass(frozen=True)
class NodeKind:
    """One kind of stage.

    - `key`: the YAML key that makes a stage this kind (`model`, `ensemble`, …); a stage has exactly one.
    - `spec`: the pydantic class of a resolved stage of this kind (a `StageSpecBase`); its fields are the
      kind's YAML keys, and the docs reference and JSON Schema are generated from it.
    - `node`: "module:function" of the graph-node factory, imported only when a graph is built:
      `make_node(name, stage, submit) -> (state[, config]) -> state update`. `submit(request)` hands a request
      to the runtime and blocks for its result; the runtime batches concurrent runs' requests of one type.
    - `check`: validation against the rest of the pipeline (model handles, adapters), run before `spec`
      validates the stage's values; it may rewrite `stage` (e.g. resolve adapter paths).
    - `reference`: nested pydantic classes of the kind by name → where they sit in YAML, for the docs.
    - `inner_stages`: for a kind whose node runs other stages of the pipeline itself (a router runs the expert
      it picks), the names of those stages in a stage of the kind. They get no graph node and no edges of
      their own; their templates are checked where the stage that runs them stands; `node` is called with
      `stages=` (every stage's spec by name).
    - `check_stages`: validation against the other stages' specs, once every stage is loaded:
      `check_stages(name, stage, stages, report)`, `report(path, message)` as in `StageChecks.report`.
    - `records`: the records its stage messages carry (fslm/spec/kind_hooks.py), each under its own key: how
      `runs show` and the viewer print them, and where a routing kind sent a run.
    - `choice_output`: when a stage of the kind ends a pipeline with a pick among options, how `fslm eval`
      scores it: `choice_output(name, stage, stages)`, None for a stage that picks nothing.
    """

    name: str
    key: str
    spec: type[StageSpecBase]
    node: str
    description: str
    check: Callable[[str, dict[str, Any], StageChecks], None] | None = None
    reference: Mapping[str, str] = field(default_factory=dict)
    inner_stages: Callable[[StageSpecBase], Sequence[str]] | None = None
    check_stages: CheckStages | None = None
    records: tuple[MessageRecord, ...] = ()
    choice_output: ChoiceOutputOf | None = None


class KindRegistryError(Exception):
    """A kind package is broken (two kinds claim one key, an entry point is not a NodeKind): a bug to fix."""


@cache
def node_kinds() -> dict[str, NodeKind]:
    """Every registered kind by its YAML key, fslm's own first (`model`, then `ensemble`), then others'."""
    loaded: list[tuple[bool, NodeKind]] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        kind = point.load()
        if not isinstance(kind, NodeKind):
            raise KindRegistryError(f"entry point {point.name} = {point.value} is not a fslm NodeKind")
        loaded.append((point.value.startswith("fslm."), kind))
    kinds: dict[str, NodeKind] = {}
    # fslm's own kinds first, the plain stage before them all: messages and docs list them in this order
    for _, kind in sorted(loaded, key=lambda item: (not item[0], item[1].name != "stage", item[1].name)):
        if kind.key in kinds and kinds[kind.key] != kind:
            raise KindRegistryError(
                f"kinds {kinds[kind.key].name!r} and {kind.name!r} both use the key {kind.key!r}"
            )
        kinds[kind.key] = kind
    if not kinds:
        raise KindRegistryError(
            f"no node kinds are registered in the {ENTRY_POINT_GROUP!r} entry points: fslm is not installed "
            "(run `pip install -e .` in its checkout)"
        )
    return kinds


def kind_of(stage: StageSpecBase) -> NodeKind:
    """The registered kind whose spec class `stage` is."""
    (kind,) = [kind for kind in node_kinds().values() if isinstance(stage, kind.spec)]
    return kind


def node_factory(stage: StageSpecBase) -> Callable[..., Callable]:
    """The registered kind's `make_node(name, stage, submit)` for `stage`, imported on first use."""
    return load_reference(kind_of(stage).node)


def inner_stages(stages: Mapping[str, StageSpecBase]) -> dict[str, str]:
    """Stage → the stage that runs it inside its own node (see `NodeKind.inner_stages`), for each such stage
    that exists."""
    owners: dict[str, str] = {}
    for name, stage in stages.items():
        kind = kind_of(stage)
        if kind.inner_stages is not None:
            owners.update({inner: name for inner in kind.inner_stages(stage) if inner in stages})
    return owners


@cache
def message_records() -> dict[str, MessageRecord]:
    """Every record a registered kind's messages may carry, by its key in the message. Kinds that write the
    same record (a boost stage writes a choice stage's) name the same `MessageRecord`."""
    records: dict[str, MessageRecord] = {}
    for kind in node_kinds().values():
        for record in kind.records:
            if records.setdefault(record.key, record) != record:
                raise KindRegistryError(
                    f"two kinds define different records under the message key {record.key!r}"
                )
    return records


def message_tables(message: Mapping[str, Any]) -> list[RecordTable]:
    """The tables of the records a stage message carries, as the kinds that write them show them."""
    return [record.table(message[key]) for key, record in message_records().items() if key in message]


def kind_keys_text() -> str:
    """ "'model' or 'ensemble'" — the keys a stage chooses its kind with, for messages."""
    keys = [repr(key) for key in node_kinds()]
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} or {keys[-1]}"


def kinds_for(stage: Mapping[str, Any]) -> list[NodeKind]:
    """The kinds `stage` (a stage's YAML mapping) can be; a valid stage has exactly one.

    A stage is the kind whose key it holds. It may hold another kind's key too when its kind has that key as
    a field of its own (a choice stage holds `choices` and `model`): the kind that has every held key wins."""
    held = [key for key in node_kinds() if stage.get(key) is not None]
    return [
        node_kinds()[key]
        for key in held
        if all(other in node_kinds()[key].spec.model_fields for other in held)
    ]
