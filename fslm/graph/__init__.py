"""Graph layer: a PipelineSpec becomes a LangGraph StateGraph with one node per stage."""

from fslm.graph.build import build_graph
from fslm.graph.state import RunState, StageMessage

__all__ = ["RunState", "StageMessage", "build_graph"]
