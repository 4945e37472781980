"""Generated docs stay in step with the code, and shipped YAML stays valid."""

from pathlib import Path

import pytest

from fslm.spec import load_spec
from fslm.spec.reference import generated_files

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", list(generated_files()), ids=lambda p: p.name)
def test_generated_reference_is_current(path):
    assert path.read_text() == generated_files()[path], "run: python -m fslm.spec.reference"


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_validate(path):
    assert load_spec(path).stages
