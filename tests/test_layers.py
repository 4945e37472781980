"""The layering of shared/DESIGN.md holds: spec knows nothing of torch, runtime nothing of LangGraph, nodes
nothing of weights. Each check imports a layer in a fresh interpreter and reads what ended up in
`sys.modules`.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fslm.nodes
import fslm.runtime
import fslm.spec

ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE_PIPELINE = (
    "models:\n  smol: {source: smollm2-135m-instruct}\n  gemma: {source: gemma3-270m}\n"
    "stages:\n  answer:\n    ensemble: {members: [smol, gemma]}\n    prompt: 'Q: {{ input }}'\n"
)
MODEL_LOADING = ("transformers", "peft", "fslm.runtime.loaded", "fslm.runtime.engine")


def submodules(package: ModuleType) -> list[str]:
    """The package and every module under it, so that a new module (a new node kind) is checked too."""
    walked = pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    return [package.__name__, *sorted(module.name for module in walked)]


def modules_after(code: str) -> set[str]:
    """The names in `sys.modules` after a new interpreter, started in the repository, runs `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """Which of `packages` (or modules inside them) are among `modules`."""
    return sorted(
        package for package in packages if any(m == package or m.startswith(f"{package}.") for m in modules)
    )


def test_spec_and_loading_pipelines_pull_in_no_torch_transformers_or_langgraph(tmp_path: Path) -> None:
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text(ENSEMBLE_PIPELINE)
    shipped = sorted(str(path) for path in (ROOT / "pipelines").glob("*.yaml"))
    assert shipped, "no shipped pipelines found"
    code = "\n".join(
        [
            *(f"import {module}" for module in submodules(fslm.spec)),
            f"for path in {[*shipped, str(ensemble)]!r}:",
            "    fslm.spec.load_spec(path)",
        ]
    )
    assert loaded(modules_after(code), ("torch", "transformers", "langgraph")) == []


def test_runtime_pulls_in_no_langgraph() -> None:
    code = "\n".join(f"import {module}" for module in submodules(fslm.runtime))
    assert loaded(modules_after(code), ("langgraph",)) == []


@pytest.mark.parametrize("module", submodules(fslm.nodes))
def test_a_node_module_loads_no_model_code(module: str) -> None:
    assert loaded(modules_after(f"import {module}"), MODEL_LOADING) == []


def test_store_pulls_in_no_torch() -> None:
    assert loaded(modules_after("import fslm.store"), ("torch",)) == []
