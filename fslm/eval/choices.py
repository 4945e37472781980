"""Which stage's pick is a pipeline's output, and how `fslm eval` scores it: the output stage's kind says, by
its `choice_output` hook (fslm/spec/kind_hooks.py). A choice stage is scored by lm-eval-harness's acc and
acc_norm; a router over choice stages from the record of the expert it chose."""

from __future__ import annotations

from fslm.spec.kind_hooks import ChoiceOutput
from fslm.spec.kinds import kind_of
from fslm.spec.models import END, PipelineSpec


def output_choice_stage(spec: PipelineSpec) -> ChoiceOutput | None:
    """How the stage that gives every run's output scores its pick: the pipeline's `output` stage, or the only
    stage that ends runs; None when its kind picks nothing or several stages end runs."""
    ending = [spec.output] if spec.output else _ending_stages(spec)
    if len(ending) != 1:
        return None
    stage = spec.stages[ending[0]]
    hook = kind_of(stage).choice_output
    return None if hook is None else hook(ending[0], stage, spec.stages)


def _ending_stages(spec: PipelineSpec) -> list[str]:
    ending = (source for edge in spec.edges if END in edge.next_stages() for source in edge.sources)
    return list(dict.fromkeys(ending))
