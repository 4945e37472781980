"""Evaluating pipelines on labelled data: metrics and the batched evaluation behind `fslm eval`."""
