"""The layering of shared/DESIGN.md holds: spec knows nothing of torch, runtime nothing of LangGraph, nodes
nothing of weights. Each check imports a layer in a fresh interpreter and reads what ended up in
`sys.modules`. And no two packages of fslm import each other, directly or through others: read from the
source, every import counts (at the top, inside a function, or for type checking only).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_runtime_pulls_in_no_langgraph() -> None:
    code = "\n".join(f"import {module}" for module in submodules(fslm.runtime))
    assert loaded(modules_after(code), ("langgraph",)) == []


@pytest.mark.slow
@pytest.mark.parametrize("module", submodules(fslm.nodes))
def test_a_node_module_loads_no_model_code(module: str) -> None:
    assert loaded(modules_after(f"import {module}"), MODEL_LOADING) == []


@pytest.mark.slow
def test_store_pulls_in_no_torch() -> None:
    assert loaded(modules_after("import fslm.store"), ("torch",)) == []


# A package's imports of other packages: imported package → where ("fslm/eval/items.py:23").
PackageImports = dict[str, dict[str, list[str]]]


def package_of(module: str) -> str:
    """`fslm.graph.build` → `fslm.graph`; a top-level module (`fslm.pipeline`) is a package of its own."""
    return ".".join(module.split(".")[:2])


def package_imports(root: Path, top: str = "fslm") -> PackageImports:
    """Which packages of `top` (a package directory under `root`) each of its packages imports."""
    graph: PackageImports = {}
    for path in sorted((root / top).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = parts[:-1]  # the package a relative import starts from (an `__init__.py`'s own)
        importer = package_of(".".join(package if path.name == "__init__.py" else parts))
        for line, module in _imported_modules(path, package, root):
            imported = package_of(module)
            if module.split(".")[0] != top or imported == importer:
                continue
            where = graph.setdefault(importer, {}).setdefault(imported, [])
            place = f"{path.relative_to(root)}:{line}"
            if place not in where:  # `from A import b, c` is one import
                where.append(place)
    return graph


def _imported_modules(path: Path, package: tuple[str, ...], root: Path) -> list[tuple[int, str]]:
    """(line, module) for each import in `path`; `from A import B` imports `A.B` when that is a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative to the importing module's package
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            for alias in node.names:
                submodule = root / base.replace(".", "/") / alias.name
                is_module = submodule.with_suffix(".py").is_file() or (submodule / "__init__.py").is_file()
                found.append((node.lineno, f"{base}.{alias.name}" if is_module else base))
    return found


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The groups of packages that import each other, directly or through others (the strongly connected
    components with more than one package), each sorted."""
    reachable = {package: _reachable(graph, package) for package in graph}
    groups = {
        tuple(sorted(other for other in reach if package in reachable.get(other, ())))
        for package, reach in reachable.items()
        if package in reach
    }
    return sorted(list(group) for group in groups)


def _reachable(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for imported in graph.get(todo.pop(), ()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def describe_cycle(cycle: list[str], graph: PackageImports) -> str:
    edges = [
        f"  {importer} imports {imported} at {', '.join(graph[importer][imported])}"
        for importer in cycle
        for imported in cycle
        if imported in graph.get(importer, {})
    ]
    return "\n".join([f"import cycle between {', '.join(cycle)}:", *edges])


@pytest.mark.slow
def test_no_two_fslm_packages_import_each_other() -> None:
    graph = package_imports(ROOT)
    assert "fslm.runtime" in graph and "fslm.nodes" in graph  # the source was read
    cycles = import_cycles(graph)
    assert not cycles, "\n".join(describe_cycle(cycle, graph) for cycle in cycles)


def test_import_cycles_finds_direct_and_longer_cycles_only() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}, "g": set()}
    assert import_cycles(graph) == [["a", "b"], ["c", "d", "e"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}}) == []


def test_package_imports_sees_late_relative_and_type_only_imports(tmp_path: Path) -> None:
    sources = {
        "top/__init__.py": "",
        "top/errors.py": "",
        "top/a/__init__.py": "from top.a.inner import thing\n",
        "top/a/inner.py": "def late():\n    from top.b import helper\n",
        "top/b/__init__.py": "",
        "top/b/helper.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from top.c import x\n",
        "top/c/__init__.py": "from ..a import inner\nfrom top import errors\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = package_imports(tmp_path, "top")
    assert graph == {
        "top.a": {"top.b": ["top/a/inner.py:2"]},
        "top.b": {"top.c": ["top/b/helper.py:3"]},
        "top.c": {"top.a": ["top/c/__init__.py:1"], "top.errors": ["top/c/__init__.py:2"]},
    }
    (cycle,) = import_cycles(graph)
    assert cycle == ["top.a", "top.b", "top.c"]
    assert "top.c imports top.a at top/c/__init__.py:1" in describe_cycle(cycle, graph)
