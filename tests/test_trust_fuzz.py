"""Property: whatever a pipeline file holds, `fslm validate` accepts it (exit 0) or explains why not (exit 2,
a message on stderr), quickly, and never with a traceback or another exit code.

Valid pipelines (the shipped ones and a few written here) are mutated: keys deleted, duplicated, renamed and
given values of other types, lines repeated, odd bytes inserted. Set FSLM_FUZZ_EXAMPLES to run more examples.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fslm.cli.main import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("FSLM_FUZZ_EXAMPLES", "150"))
SECONDS_PER_EXAMPLE = 5.0

IN_TEST_PIPELINES = [
    """models:
  a: {source: smollm2-135m-instruct}
  b: {source: smollm2-135m-instruct, dtype: float32}
stages:
  vote:
    ensemble: {members: [a, {model: b}], weights: [1.0, 2.0], top_k: 5, primary: b}
    prompt: "Q: {{ input }}"
    generation: {max_new_tokens: 8, seed: 3, stop: ["\\n"]}
  check:
    model: a
    prompt: "{{ vote }} {% for w in input.split() %}{{ loop.index }}{{ w|upper }}{% endfor %}"
""",
    """models: {m: {source: smollm2-135m-instruct}}
stages:
  split: {model: m, prompt: "{{ input }}"}
  left: {model: m, prompt: "{{ split }}"}
  right: {model: m, prompt: "{{ split }}"}
  join: {model: m, prompt: "{{ left }} {{ right }}", chat_template: false, system: be brief}
edges:
  - {from: split, to: [left, right]}
  - {from: [left, right], to: join}
  - from: join
    when: [{label: again, to: split}, {regex: "^\\\\d+$", to: END}]
    otherwise: END
entry: split
output: join
""",
]

ODD_VALUES = st.sampled_from(
    [
        "{{ input }}",
        "{{ lipsum.__globals__ }}",
        "{% include 'x' %}",
        "{{ range(10**12)|list }}",
        "END",
        "smol",
        "plan",
        "../plan",
        "/etc/passwd",
        "~nobody/x",
        "./missing",
        "a\x00b",
        "\ud800",
        "\x1b[31m",
        ".nan",
        "[/]",
        "*a",
        "&a",
        "!!python/object:os.system",
        "",
        " ",
        "unite",
        "float32",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    ODD_VALUES,
    st.lists(st.one_of(st.integers(), st.text(max_size=6), ODD_VALUES), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=6)), max_size=2),
)
KEYS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "model",
            "prompt",
            "use",
            "ensemble",
            "members",
            "edges",
            "from",
            "to",
            "when",
            "stages",
            "models",
            "source",
            "generation",
            "seed",
            "weights",
            "adapter",
            "input",
            "END",
            "<<",
        ]
    ),
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped pipelines and the files they name (stage files, adapters, router checkpoints),
    so that `use:` names and relative paths resolve as they do in the repo."""
    root = tmp_path_factory.mktemp("fuzz")
    for folder in ("pipelines", "stages", "adapters", "routers"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def seeds() -> list[str]:
    shipped = [path.read_text() for path in sorted((REPO / "pipelines").glob("*.yaml"))]
    return shipped + IN_TEST_PIPELINES + [(REPO / "stages" / "plan.yaml").read_text()]


def key_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in `data` a mutation can touch: each mapping key and list item, at any depth."""
    found: list[tuple] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found += key_paths(value, (*prefix, key))
    return found


def parent_of(data: Any, path: tuple) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def mutate_data(data: Any, draw: st.DataObject) -> None:
    paths = key_paths(data)
    if not paths:
        return
    path = draw.draw(st.sampled_from(paths), label="path")
    parent, last = parent_of(data, path), path[-1]
    action = draw.draw(st.sampled_from(["delete", "retype", "rename", "copy"]), label="action")
    if action == "delete":
        del parent[last]
    elif action == "retype":
        parent[last] = draw.draw(VALUES, label="value")
    elif action == "rename" and isinstance(parent, dict):
        new_key = draw.draw(KEYS, label="key")
        parent[new_key] = parent.pop(last)
    elif action == "copy" and isinstance(parent, dict):
        parent[draw.draw(KEYS, label="copy key")] = parent[last]
    elif isinstance(parent, list):
        parent.append(parent[last])


def mutate_text(text: bytes, draw: st.DataObject) -> bytes:
    lines = text.split(b"\n")
    action = draw.draw(st.sampled_from(["insert", "repeat-line", "drop-line", "none"]), label="text action")
    index = draw.draw(st.integers(0, max(len(lines) - 1, 0)), label="line")
    if action == "repeat-line":
        lines.insert(index, lines[index])
    elif action == "drop-line":
        del lines[index]
    elif action == "insert":
        odd = draw.draw(
            st.one_of(
                st.sampled_from(
                    [
                        b"\x00",
                        b"\x1b",
                        b"\x7f",
                        b"\xff",
                        b"\xed\xa0\x80",
                        b"\t",
                        b"\r",
                        b"&a ",
                        b"*a",
                        b"[",
                        b"{",
                        b"'",
                        b'"',
                        b"{{",
                        b"{%",
                        b": ",
                        b"- ",
                        b"#",
                    ]
                ),
                st.binary(min_size=1, max_size=4),
            ),
            label="bytes",
        )
        column = draw.draw(st.integers(0, len(lines[index])), label="column")
        lines[index] = lines[index][:column] + odd + lines[index][column:]
    return b"\n".join(lines)


def dumped(data: Any) -> bytes:
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, ValueError, RecursionError):  # e.g. a key made a list: dump the text as it was
        return b""


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    seed=st.sampled_from(seeds()),
    data_mutations=st.integers(0, 3),
    text_mutations=st.integers(0, 2),
    draw=st.data(),
)
def test_validate_accepts_or_explains_every_mutation(
    workspace, capsys, seed, data_mutations, text_mutations, draw
):
    data = yaml.safe_load(seed)
    for _ in range(data_mutations):
        mutate_data(data, draw)
    text = (dumped(data) if data_mutations else b"") or seed.encode()
    for _ in range(text_mutations):
        text = mutate_text(text, draw)
    target = workspace / "pipelines" / "fuzz.yaml"
    if "model:" in seed and "stages:" not in seed:  # the stage file: mutate it, use it from a pipeline
        (workspace / "stages" / "fuzzed.yaml").write_bytes(text)
        target.write_text("models: {smol: {source: smollm2-135m-instruct}}\nstages:\n  a: {use: fuzzed}\n")
    else:
        target.write_bytes(text)

    started = time.perf_counter()
    code = main(["validate", str(target)])
    seconds = time.perf_counter() - started
    out, err = capsys.readouterr()

    assert code in (0, 2), f"exit {code}\n{err}"
    if code == 0:
        assert out.startswith("ok ")
    else:
        assert err.startswith("error: ") and len(err.strip()) > len("error:")
    assert seconds < SECONDS_PER_EXAMPLE, f"validate took {seconds:.1f} s"


def test_the_seeds_are_valid(workspace, capsys):
    for seed in seeds()[:-1]:
        (workspace / "pipelines" / "seed.yaml").write_text(seed)
        assert main(["validate", str(workspace / "pipelines" / "seed.yaml")]) == 0, capsys.readouterr().err


@pytest.mark.slow
def test_validate_never_imports_torch(workspace):
    """Validating files, valid and not, never loads torch (so it cannot load a model). Checked in a fresh
    interpreter: in this one, earlier tests have imported torch."""
    paths = []
    for index, seed in enumerate(seeds()[:-1]):
        lines = seed.splitlines(keepends=True)
        for kind, text in (("whole", seed), ("half", "".join(lines[: len(lines) // 2]))):
            path = workspace / "pipelines" / f"torchless-{index}-{kind}.yaml"
            path.write_text(text)
            paths.append(str(path))
    script = (
        "import sys\nfrom fslm.cli.main import main\n"
        "codes = {main(['validate', path]) for path in sys.argv[1:]}\n"
        "print(sorted(codes), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[0, 2] False", "validate imported torch (a model could load)"
