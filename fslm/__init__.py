"""fslm: pipelines of stacked small language models, written in YAML and run on LangGraph."""

from fslm.errors import FslmError

__all__ = ["FslmError", "Pipeline", "RunResult", "load_pipeline"]


def __getattr__(name: str):
    # Deferred so that `fslm validate` and the spec layer never pay for importing torch.
    if name in {"Pipeline", "RunResult", "load_pipeline"}:
        from fslm import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
