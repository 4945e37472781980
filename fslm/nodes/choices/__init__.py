"""The `choices` node kind: a model (or an ensemble) picks one of the stage's options by likelihood.

`spec.py` holds its YAML keys and checks (read by the spec layer: no torch, no LangGraph); `record.py` what it
records; `decision.py` the normalising, averaging and picking; `node.py` the graph node. The scoring itself
lives in the runtime, `fslm/runtime/scoring/`.
"""

from fslm.nodes.choices.record import ChoicesRecord
from fslm.nodes.choices.scoring import choice_output
from fslm.nodes.choices.show import choices_table
from fslm.nodes.choices.spec import ChoiceStageSpec, check_choices
from fslm.spec.kind_hooks import MessageRecord
from fslm.spec.kinds import NodeKind

CHOICES_RECORD = MessageRecord("choices", ChoicesRecord, choices_table)

KIND = NodeKind(
    name="choices",
    key="choices",
    spec=ChoiceStageSpec,
    node="fslm.nodes.choices.node:make_choices_node",
    description="A model (or an ensemble) picks one of the options by the likelihood it gives each.",
    check=check_choices,
    records=(CHOICES_RECORD,),
    choice_output=choice_output,
    reference={"AbstainSpec": "`stages.<name>.abstain`"},
)
