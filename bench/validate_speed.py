"""How long `fslm validate` takes on large pipeline files: validated, or refused by a bound, against the 2 s
target for any file up to the 4 MiB cap. The pure-Python YAML composer the loader used before is timed on the
same 3 MB file for comparison.

    .venv/bin/python bench/validate_speed.py
"""

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from common import record

from fslm.spec.loader import MAX_STAGES, load_spec
from fslm.spec.problems import SpecError
from fslm.spec.yaml_source import MAX_FILE_BYTES, MAX_VALUES

MODELS = "models:\n  smol: {source: smollm2-135m-instruct}\n"
TARGET_SECONDS = 2.0
REPEATS = 3


def one_line_stages(count: int) -> str:
    """`count` stages of one line each, every prompt its own template (about 50 bytes a stage)."""
    lines = [
        f"  s{index}: {{model: smol, prompt: 'Step {index}: {{{{ input }}}}'}}" for index in range(count)
    ]
    return MODELS + "stages:\n" + "\n".join(lines) + "\n"


def one_letter_list() -> str:
    """A file at the size cap that is nearly all values: a list of one-letter items."""
    count = (MAX_FILE_BYTES - 64) // 2
    return "stages: [" + ",".join(["a"] * count) + "]\n"


def best_of(action: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float]:
    """The best wall and CPU seconds of `repeats` runs of `action`."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def validate(path: Path) -> str:
    try:
        spec = load_spec(path)
    except SpecError as error:
        return f"refused: {error.problems[0].message}"
    return f"validated: {len(spec.stages):,} stages"


def row(name: str, size: int, outcome: str, wall: float, cpu: float) -> dict:
    return {
        "file": name,
        "MB": f"{size / 1e6:.2f}",
        "outcome": outcome,
        "wall s": f"{wall:.2f}",
        "CPU s": f"{cpu:.2f}",
        f"under {TARGET_SECONDS:g} s": "yes" if wall < TARGET_SECONDS else "no",
    }


def main() -> None:
    files = {
        f"{MAX_STAGES:,} one-line stages": one_line_stages(MAX_STAGES),
        "60,000 one-line stages (the issue's file)": one_line_stages(60_000),
        "one-letter list at the 4 MiB cap": one_letter_list(),
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            path = Path(folder) / "pipeline.yaml"
            path.write_text(text)
            wall, cpu = best_of(lambda path=path: validate(path))
            rows.append(row(name, len(text.encode()), validate(path), wall, cpu))
            print(rows[-1])
    text = files["60,000 one-line stages (the issue's file)"]
    wall, cpu = best_of(lambda: yaml.compose(text, Loader=yaml.SafeLoader), repeats=1)
    before = "60,000 one-line stages: PyYAML's pure-Python composer alone, as before"
    rows.append(row(before, len(text.encode()), "composed", wall, cpu))
    print(rows[-1])
    notes = (
        "Script: `bench/validate_speed.py`. Seconds are the best of 3 in one process (imports excluded), "
        f"wall and CPU; target: every file up to the {MAX_FILE_BYTES // 2**20} MiB cap validated or refused "
        f"in under {TARGET_SECONDS:g} s. The YAML is parsed by libyaml's C parser and built from its events; "
        f"a pipeline of more than {MAX_STAGES:,} stages is refused before its stages are checked, and a file "
        f"of more than {MAX_VALUES:,} values as it is parsed. The last row (one run) is the loader's parser "
        "before."
    )
    print(record("validate_speed", rows, notes))


if __name__ == "__main__":
    main()
