"""The `ensemble` node kind: a stage served by several small models voting token by token (UniTE).

`spec.py` holds its YAML block and its checks (read by the spec layer: no torch, no LangGraph);
`node.py` holds the graph node that turns a stage into ensemble requests and records how the members voted.
The decoding itself lives in the runtime, `fslm/runtime/ensemble/`.
"""

from fslm.nodes.unite.show import VOTE_RECORD
from fslm.nodes.unite.spec import EnsembleStageSpec, check_ensemble
from fslm.spec.kinds import NodeKind

KIND = NodeKind(
    name="ensemble",
    key="ensemble",
    spec=EnsembleStageSpec,
    node="fslm.nodes.unite.node:make_unite_node",
    description="Several models vote token by token over the union of their top-k tokens (UniTE).",
    check=check_ensemble,
    records=(VOTE_RECORD,),
    reference={
        "EnsembleSpec": "`stages.<name>.ensemble`",
        "EnsembleMemberSpec": "`stages.<name>.ensemble.members[]`",
    },
)
