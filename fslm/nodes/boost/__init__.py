"""The `boost` node kind: a stage served by an α-weighted ensemble of weak members (EnsemW2S).

`spec.py` holds its YAML block and checks, `checkpoint.py` the file `fslm finetune boost` writes and the
stage reads its α from (both read by the spec layer: no torch, no LangGraph); `node.py` holds the graph node.
The decoding lives in the runtime, `fslm/runtime/boost/`.
"""

from fslm.nodes.boost.scoring import boost_choice_output
from fslm.nodes.boost.spec import BoostStageSpec, check_boost
from fslm.nodes.choices import CHOICES_RECORD
from fslm.nodes.unite.show import VOTE_RECORD
from fslm.spec.kinds import NodeKind

KIND = NodeKind(
    name="boost",
    key="boost",
    spec=BoostStageSpec,
    node="fslm.nodes.boost.node:make_boost_node",
    description="Weak members mix their next-token (or option) probabilities with AdaBoost weights α.",
    check=check_boost,
    records=(VOTE_RECORD, CHOICES_RECORD),
    choice_output=boost_choice_output,
    reference={
        "BoostSpec": "`stages.<name>.boost`",
    },
)
