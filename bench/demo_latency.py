"""How long the README's demos take to answer, cold (the first run after install: the builtin GGUF file is
converted into fslm's cache) and warm (the next run), each in a fresh Python process as a user's command.

For each demo, a subprocess imports fslm, loads the pipeline, streams one run with tokens and reports, from
the process's start: when `import fslm` finished, when the pipeline was loaded, when the first token of
the first generating stage arrived (time to first token; a choice stage streams none, so for the SNIPS
demo it is when its answer arrived) and when the run ended. Cold runs use a new empty cache directory
($FSLM_CACHE_DIR); warm runs reuse it. The run store is a temporary file each time.

Usage: python bench/demo_latency.py [--repeats 2]
Writes bench/results/demo_latency.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import BENCH, record

DEMOS = {
    "pipelines/tasks/snips.yaml": {"text": "i need a table for 5 at a highly rated gastropub in concord mn"},
    "pipelines/demo.yaml": "Why is the sky blue?",
}
CHILD = """
import json, sys, time
started = time.perf_counter()
import fslm
imported = time.perf_counter()
pipeline = fslm.load_pipeline(sys.argv[1], store=sys.argv[3])
loaded = time.perf_counter()
first = None
for event in pipeline.stream(json.loads(sys.argv[2]), tokens=True):
    if first is None:
        first = time.perf_counter()
ended = time.perf_counter()
pipeline.close()
print(json.dumps({"import": imported - started, "load": loaded - started, "first": first - started,
                  "total": ended - started}))
"""


def one_run(pipeline: str, run_input: object, cache: Path) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, pipeline, json.dumps(run_input), str(Path(folder) / "runs.sqlite")],
            cwd=BENCH.parent,
            env=os.environ | {"FSLM_CACHE_DIR": str(cache)},
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="cold and warm runs per demo, best kept (2)")
    args = parser.parse_args()
    rows = []
    for pipeline, run_input in DEMOS.items():
        for state in ("cold", "warm"):
            timings = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as cache:
                    if state == "warm":
                        one_run(pipeline, run_input, Path(cache))  # fills the cache
                    timings.append(one_run(pipeline, run_input, Path(cache)))
            best = min(timings, key=lambda timing: timing["total"])
            rows.append(
                {
                    "demo": pipeline,
                    "cache": state,
                    "import fslm s": round(best["import"], 2),
                    "pipeline loaded s": round(best["load"], 2),
                    "first token s": round(best["first"], 2),
                    "run ended s": round(best["total"], 2),
                }
            )
            print(rows[-1], flush=True)
    notes = (
        f"Command: `python bench/demo_latency.py --repeats {args.repeats}`. Each figure is seconds from the "
        "start of a fresh Python process (the best of the repeats by total time): `import fslm`, the "
        "pipeline loaded (specs checked; models load lazily on first use), the first streamed token (for "
        "the SNIPS choice stage, which streams no tokens, its answer), the run's end. Cold: a new empty "
        "$FSLM_CACHE_DIR, so the GGUF file is converted and the converted checkpoint written; warm: the "
        "same command again with the filled cache."
    )
    print(f"wrote {record('demo_latency', rows, notes)}")


if __name__ == "__main__":
    main()
