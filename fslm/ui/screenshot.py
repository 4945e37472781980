"""Make the viewer's documentation screenshot: record runs into a fresh store, serve it, photograph a run.

    python -m fslm.ui.screenshot docs/images/viewer.png [--pipeline pipelines/demo.yaml] [--input TEXT ...]

The first input's run is photographed. Needs selenium and a system chromium with chromedriver.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from fslm.errors import FslmError

DEFAULT_INPUTS = ("Why is the sky blue?", "How do tides work?")


def record_runs(pipeline_path: Path, inputs: list[str], store_path: Path) -> list[str]:
    """Run the pipeline on each input into the store at `store_path`; the run ids, in input order."""
    from fslm.pipeline import load_pipeline

    pipeline = load_pipeline(pipeline_path, store=store_path)
    try:
        return [result.run_id for result in pipeline.batch(inputs)]
    finally:
        pipeline.close()


def photograph_run(store_path: Path, run_id: str, out: Path) -> Path:
    from fslm.store import open_store
    from fslm.ui.browser import headless_chromium, save_screenshot
    from fslm.ui.server import make_server, serving

    with tempfile.TemporaryDirectory(prefix="fslm-chromium-") as profile:
        driver = headless_chromium(Path(profile))
        try:
            with serving(make_server(open_store(store_path, read_only=True), port=0)) as server:
                return save_screenshot(driver, f"{server.url}#/run/{run_id}", out)
        finally:
            driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fslm.ui.screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--pipeline", type=Path, default=Path("pipelines/demo.yaml"), help="pipeline to run")
    parser.add_argument("--input", action="append", help="an input text (repeatable; default: two questions)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="fslm-screenshot-") as scratch:
            store_path = Path(scratch) / "runs.sqlite"
            run_ids = record_runs(args.pipeline, args.input or list(DEFAULT_INPUTS), store_path)
            print(photograph_run(store_path, run_ids[0], args.out))
    except FslmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
