"""Errors a user can cause and fix. The CLI prints their message and exits with code 2."""


class FslmError(Exception):
    """A problem with the user's input (a file, a name, a value), not a bug in fslm."""


class ModelNotFoundError(FslmError):
    """A model reference could not be resolved to weights on this machine."""
