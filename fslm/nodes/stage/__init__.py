"""The `stage` node kind: one small LM (optionally with a LoRA adapter), one prompt, one task.

`spec.py` holds its YAML keys and their checks (read by the spec layer: no torch, no LangGraph);
`node.py` holds the graph node that sends the rendered prompt to the runtime and records the answer;
`record.py` what it records of its tokens' log-probabilities and how `runs show` prints it.
"""

from fslm.nodes.stage.record import TokenLogprobs, logprobs_table
from fslm.nodes.stage.spec import StageSpec, check_stage
from fslm.spec.kind_hooks import MessageRecord
from fslm.spec.kinds import NodeKind

KIND = NodeKind(
    name="stage",
    key="model",
    spec=StageSpec,
    node="fslm.nodes.stage.node:make_stage_node",
    description="One model, optionally with a LoRA adapter, writes the stage's text.",
    check=check_stage,
    records=(MessageRecord("logprobs", TokenLogprobs, logprobs_table),),
)
