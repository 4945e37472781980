"""The `unite` node kind: a stage served by an ensemble of small models (UniTE top-k union decoding).

`spec.py` holds its YAML block (imported by the spec layer, so it stays free of torch and LangGraph);
`node.py` holds the graph node that turns a stage into ensemble requests and records what happened.
"""
