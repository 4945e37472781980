"""Evaluating on labelled data: metrics, the batched pipeline evaluation behind `fslm eval`, and the
measuring and choosing of ensemble members behind `fslm ensemble check`."""
