"""The `choices` node kind: a model (or an ensemble) picks one of the stage's options by likelihood.

`spec.py` holds its YAML keys and checks (read by the spec layer: no torch, no LangGraph); `record.py` what it
records; `decision.py` the normalising, averaging and picking; `node.py` the graph node. The scoring itself
lives in the runtime, `fslm/runtime/scoring/`.
"""

from fslm.nodes.choices.spec import ChoiceStageSpec, check_choices
from fslm.spec.kinds import NodeKind

KIND = NodeKind(
    name="choices",
    key="choices",
    spec=ChoiceStageSpec,
    node="fslm.nodes.choices.node:make_choices_node",
    description="A model (or an ensemble) picks one of the options by the likelihood it gives each.",
    check=check_choices,
)
