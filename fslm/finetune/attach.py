"""Writing an adapter into a pipeline stage (`--attach`), keeping the file's comments and formatting."""

from __future__ import annotations

import io
import os
from pathlib import Path

from fslm.errors import FslmError
from fslm.files import check_output_file, read_text_file, write_text_atomically
from fslm.finetune.target import tunable_stage, tuned_model
from fslm.runtime.base_identity import base_identity, identity_mismatch, read_identity
from fslm.spec import ModelSpec, load_spec


def check_attachable(pipeline: Path, stage: str) -> ModelSpec:
    """The model of the pipeline's `stage`, once it is known that an adapter can be written into the stage."""
    spec = load_spec(pipeline)
    try:
        tuned = tunable_stage(spec, stage)
    except FslmError as error:
        raise FslmError(f"cannot attach the adapter: {error}") from None
    check_output_file(pipeline, "pipeline")
    return tuned_model(spec, tuned)


def attach_adapter(pipeline: Path, stage: str, adapter: Path) -> None:
    """Set `stages.<stage>.adapter` in the pipeline file to `adapter`, after checking it fits the stage's
    base."""
    from ruamel.yaml import YAML

    model = check_attachable(pipeline, stage)
    _check_base(model.source, model.revision, adapter, pipeline, stage)
    yaml = YAML()  # round-trip mode: comments, key order, quoting and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(read_text_file(pipeline, "pipeline"))
    entry = data["stages"][stage]
    relative = os.path.relpath(adapter.resolve(), pipeline.resolve().parent)
    entry["adapter"] = relative
    text = io.StringIO()
    yaml.dump(data, text)
    # The edited file must still be a valid pipeline before it replaces the old one.
    write_text_atomically(pipeline, text.getvalue(), check=load_spec)


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
