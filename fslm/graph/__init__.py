"""Graph layer: a PipelineSpec becomes a LangGraph StateGraph (`fslm.graph.build`) over `RunState`."""

from fslm.graph.state import RunState, StageMessage, TokenChunk

__all__ = ["RunState", "StageMessage", "TokenChunk"]
