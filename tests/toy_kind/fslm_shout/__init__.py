"""A toy node kind from outside fslm: `shout: HANDLE` runs a model like a plain stage and upper-cases its
text. Its messages record the text as written (a table in `runs show` and the viewer); with `answers`,
`fslm eval` scores it as a pick among them.

It is the worked example of docs/extending.md and is installed by tests/test_node_kinds.py.
"""

from fslm.spec.kinds import NodeKind
from fslm_shout.record import SHOUT_RECORD, shout_choice_output
from fslm_shout.spec import ShoutStageSpec, check_shout

KIND = NodeKind(
    name="shout",
    key="shout",
    spec=ShoutStageSpec,
    node="fslm_shout.node:make_shout_node",
    description="One model writes the text, which is then upper-cased (a toy kind, docs/extending.md).",
    check=check_shout,
    records=(SHOUT_RECORD,),
    choice_output=shout_choice_output,
)
