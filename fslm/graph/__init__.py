"""Graph layer: a PipelineSpec becomes a LangGraph StateGraph (`fslm.graph.build`) over `RunState`."""

from fslm.graph.state import STREAM_TOKENS, RunState, StageMessage, TokenChunk

__all__ = ["STREAM_TOKENS", "RunState", "StageMessage", "TokenChunk"]
