"""The `fslm` command line: thin wrappers over library calls."""
