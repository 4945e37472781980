"""Writing an adapter into a pipeline stage (`--attach`), keeping the file's comments and formatting."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fslm.errors import FslmError
from fslm.runtime.base_identity import base_identity, identity_mismatch, read_identity
from fslm.spec import load_spec


def attach_adapter(pipeline: Path, stage: str, adapter: Path) -> None:
    """Set `stages.<stage>.adapter` in the pipeline file to `adapter`, after checking it fits the stage's base."""
    from ruamel.yaml import YAML

    spec = load_spec(pipeline)
    if stage not in spec.stages:
        raise FslmError(f"cannot attach to {pipeline}: it has no stage '{stage}'; its stages: {', '.join(spec.stages)}")
    _check_base(spec.models[spec.stages[stage].model].source, spec.models[spec.stages[stage].model].revision,
                adapter, pipeline, stage)
    yaml = YAML()  # round-trip mode: comments, key order, quoting and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(pipeline.read_text(encoding="utf-8"))
    entry = data["stages"][stage]
    relative = os.path.relpath(adapter.resolve(), pipeline.resolve().parent)
    entry["adapter"] = relative
    handle, temporary = tempfile.mkstemp(dir=pipeline.parent, prefix=f".{pipeline.name}.", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            yaml.dump(data, file)
        load_spec(temporary)  # the edited file must still be a valid pipeline before it replaces the old one
        os.replace(temporary, pipeline)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _check_base(source: str, revision: str | None, adapter: Path, pipeline: Path, stage: str) -> None:
    recorded = read_identity(adapter)
    if recorded is None:
        return
    from transformers import AutoModelForCausalLM

    from fslm.runtime import prepare

    model = AutoModelForCausalLM.from_pretrained(prepare(source, revision))
    problem = identity_mismatch(recorded, base_identity(model, source))
    if problem:
        raise FslmError(
            f"cannot attach {adapter} to stage '{stage}' of {pipeline}: the adapter was trained on "
            f"{recorded.get('source')}, and the stage runs on {source}: {problem}"
        )
