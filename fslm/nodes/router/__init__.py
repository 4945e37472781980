"""The `router` node kind: each input goes to the one expert stage a trained router expects to answer it
best (Zooter, Lu et al. 2023), or to a baseline's choice (rank, random, fixed).

`spec.py` holds its YAML keys and checks (read by the spec layer: no torch, no LangGraph); `checkpoint.py`
what a trained router's directory says it was trained for; `decision.py` the choosing; `record.py` what it
records; `node.py` the graph node, which runs the chosen expert's own node. The encoder runs in the runtime
(`fslm/runtime/router/`); training is `fslm/finetune/router/`.
"""

from fslm.nodes.router.record import RouterRecord
from fslm.nodes.router.scoring import router_choice_output
from fslm.nodes.router.show import routed_to, router_table
from fslm.nodes.router.spec import RouterStageSpec, check_router, check_router_stages, router_experts
from fslm.spec.kind_hooks import MessageRecord
from fslm.spec.kinds import NodeKind

KIND = NodeKind(
    name="router",
    key="router",
    spec=RouterStageSpec,
    node="fslm.nodes.router.node:make_router_node",
    description="Hands each input to one of its expert stages, chosen by a trained router (Zooter).",
    check=check_router,
    reference={"RouterSpec": "`stages.<name>.router`"},
    inner_stages=router_experts,
    check_stages=check_router_stages,
    records=(MessageRecord("router", RouterRecord, router_table, routed_to),),
    choice_output=router_choice_output,
)
