"""Engines that run a pipeline over many items.

The local engine is `Pipeline.batch`: every item in this process, generations batched per base model. The Ray
engine (`fslm.engines.ray_engine`, the `ray` extra) spreads the items over Ray actors, each a local engine of
its own, and records every run in the same store, the same way.
"""
