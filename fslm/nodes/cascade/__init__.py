"""The `cascade` node kind: answer with the cheapest step, and escalate to the next only when it is unsure
(FrugalGPT, Chen et al. 2023; the threshold cascade RouteLLM compares routers with).

`spec.py` holds its YAML keys and checks (read by the spec layer: no torch, no LangGraph); `confidence.py` a
step's confidence and where the cascade stops; `record.py` what it records; `show.py` and `scoring.py` how
`runs show`, the viewer and `fslm eval` read it; `node.py` the graph node, which runs the steps' own nodes.
Thresholds are picked on dev data by `fslm finetune cascade` (`fslm/finetune/cascade/`).
"""

from fslm.nodes.cascade.record import CascadeRecord
from fslm.nodes.cascade.scoring import cascade_choice_output
from fslm.nodes.cascade.show import answered_by, cascade_table
from fslm.nodes.cascade.spec import CascadeStageSpec, cascade_steps, check_cascade, check_cascade_stages
from fslm.spec.kind_hooks import MessageRecord
from fslm.spec.kinds import NodeKind

KIND = NodeKind(
    name="cascade",
    key="cascade",
    spec=CascadeStageSpec,
    node="fslm.nodes.cascade.node:make_cascade_node",
    description="Answers with its cheapest stage that is confident enough, else escalates to the next.",
    check=check_cascade,
    reference={"CascadeSpec": "`stages.<name>.cascade`"},
    inner_stages=cascade_steps,
    check_stages=check_cascade_stages,
    records=(MessageRecord("cascade", CascadeRecord, cascade_table, answered_by),),
    choice_output=cascade_choice_output,
)
