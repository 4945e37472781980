"""The node-kind registry: fslm's own kinds, and a third-party kind installed through the entry point."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fslm.nodes.stage.spec import StageSpec
from fslm.nodes.unite.spec import EnsembleStageSpec
from fslm.spec import load_spec
from fslm.spec.kinds import kind_keys_text, node_kinds

TOY_KIND = Path(__file__).parent / "toy_kind" / "fslm_shout"


def test_fslm_registers_its_own_kinds_plain_stage_first() -> None:
    kinds = node_kinds()
    assert next(iter(kinds)) == "model" and kinds["model"].spec is StageSpec
    assert kinds["ensemble"].name == "ensemble" and kinds["ensemble"].spec is EnsembleStageSpec
    assert kind_keys_text().startswith("'model', ") and kind_keys_text().endswith(f" or {list(kinds)[-1]!r}")


def test_each_stage_is_its_kinds_spec_class(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "models: {a: {source: org/a}, b: {source: org/b}}\n"
        "stages:\n  one: {model: a, prompt: '{{ input }}'}\n"
        "  two: {ensemble: {members: [a, b]}, prompt: '{{ one }}'}\n"
    )
    stages = load_spec(path).stages
    assert type(stages["one"]) is StageSpec and type(stages["two"]) is EnsembleStageSpec


@pytest.fixture
def toy_installed(tmp_path: Path) -> dict[str, str]:
    """A site directory holding the toy kind's package and the metadata pip would write for it."""
    site = tmp_path / "site"
    shutil.copytree(TOY_KIND, site / "fslm_shout")
    info = site / "fslm_shout-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fslm-shout\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fslm.node_kinds]\nshout = fslm_shout:KIND\n")
    return {**os.environ, "PYTHONPATH": str(site)}


def fslm(env: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fslm.cli.main", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def shout_pipeline(tmp_path: Path, tiny_model: Path, stage_keys: str = "shout: tiny") -> Path:
    path = tmp_path / "loud.yaml"
    path.write_text(
        f"models:\n  tiny: {{source: {tiny_model}, dtype: float32}}\n"
        "stages:\n"
        "  plain:\n    model: tiny\n    chat_template: false\n    prompt: '{{ input }}'\n"
        "    generation: {max_new_tokens: 8}\n"
        f"  loud:\n    {stage_keys}\n    chat_template: false\n    prompt: '{{{{ input }}}}'\n"
        "    generation: {max_new_tokens: 8}\n"
    )
    return path


@pytest.mark.slow
def test_a_third_party_kind_validates_and_runs(toy_installed, tmp_path, tiny_model) -> None:
    pipeline = shout_pipeline(tmp_path, tiny_model)
    assert fslm(toy_installed, "validate", str(pipeline)).returncode == 0
    done = fslm(
        toy_installed, "run", str(pipeline), "hello there", "--json", "--store", str(tmp_path / "r.sqlite")
    )
    assert done.returncode == 0, done.stderr
    plain, loud = json.loads(done.stdout)["messages"]
    assert loud["stage"] == "loud" and plain["text"].strip()
    assert loud["text"] == plain["text"].upper()  # same model, prompt and greedy decoding, then upper-cased
    schema = fslm(toy_installed, "schema")
    assert schema.returncode == 0 and '"shout"' in schema.stdout


@pytest.mark.slow
def test_a_third_party_kinds_checks_and_the_one_kind_rule(toy_installed, tmp_path, tiny_model) -> None:
    unknown = fslm(toy_installed, "validate", str(shout_pipeline(tmp_path, tiny_model, "shout: nope")))
    assert unknown.returncode == 2 and "shouts with unknown model 'nope'" in unknown.stderr
    both = fslm(
        toy_installed, "validate", str(shout_pipeline(tmp_path, tiny_model, "shout: tiny\n    model: tiny"))
    )
    assert both.returncode == 2
    assert "exactly one of 'model' or 'shout'" in both.stderr
    neither = fslm(toy_installed, "validate", str(shout_pipeline(tmp_path, tiny_model, "system: hi")))
    assert neither.returncode == 2 and "'shout' (and a prompt)" in neither.stderr


@pytest.mark.slow
def test_without_the_kind_installed_its_key_is_unknown(tmp_path, tiny_model) -> None:
    done = fslm(None, "validate", str(shout_pipeline(tmp_path, tiny_model)))
    assert done.returncode == 2 and "unknown key 'shout'" in done.stderr


@pytest.mark.slow
def test_a_third_party_kind_is_shown_and_scored_through_its_hooks(
    toy_installed, tmp_path, tiny_model
) -> None:
    store = str(tmp_path / "r.sqlite")
    ran = fslm(
        toy_installed, "run", str(shout_pipeline(tmp_path, tiny_model)), "hello", "--json", "--store", store
    )
    assert ran.returncode == 0, ran.stderr
    done = json.loads(ran.stdout)
    written = done["messages"][1]["shout"]["written"]
    assert done["messages"][1]["text"] == written.upper()
    shown = fslm(toy_installed, "runs", "show", done["run_id"], "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert "shouted" in shown.stdout and "letters raised" in shown.stdout

    # Scored as a pick among its answers: right when it shouts the gold one.
    pipeline = tmp_path / "pick.yaml"
    pipeline.write_text(
        f"models:\n  tiny: {{source: {tiny_model}, dtype: float32}}\ninputs: [text]\n"
        "stages:\n  loud:\n    shout: tiny\n    chat_template: false\n    prompt: '{{ text }}'\n"
        f"    generation: {{max_new_tokens: 8}}\n    answers: {json.dumps([written, 'not this'])}\n"
    )
    data = tmp_path / "items.jsonl"
    data.write_text(
        json.dumps({"text": "hello", "answer": written})
        + "\n"
        + json.dumps({"text": "hello", "answer": "not this"})
    )
    results = tmp_path / "results.jsonl"
    scored = fslm(
        toy_installed, "eval", str(pipeline), "--data", str(data), "--output", str(results), "--store", store
    )
    assert scored.returncode == 0, scored.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["scores"] for row in rows] == [{"acc": 1.0}, {"acc": 0.0}]


@pytest.mark.slow
def test_only_the_kinds_own_folders_and_their_trainers_import_them() -> None:
    """graph/, eval/, cli/, the viewer, the store, the engines and the pipeline reach kinds through the
    registry and its hooks, never by importing a kind's modules."""
    import ast

    root = Path(__file__).resolve().parent.parent / "fslm"
    importers = []
    for path in sorted(root.rglob("*.py")):
        inside = path.relative_to(root).parts[0]
        if inside in ("nodes", "finetune"):  # the kinds themselves, and the trainers of the kinds they tune
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            importers += [
                f"{path.relative_to(root)}: {name}" for name in names if name.startswith("fslm.nodes")
            ]
    assert importers == []
