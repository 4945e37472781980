"""Shared fixtures: a tiny random model and two LoRA adapters, built once per test session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets tests `import tiny` however pytest is invoked

from tiny import make_tiny_adapter, make_tiny_model

# Tests that use these fixtures start something heavy: a headless browser, a Ray cluster, a PostgreSQL server.
SLOW_FIXTURES = {"browser", "cluster", "database"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as `slow` the tests that start a browser, Ray or PostgreSQL; tests that load a real model or take
    seconds on their own carry `@pytest.mark.slow` themselves. `pytest -m "not slow"` is the quick loop."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def fslm_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point fslm's converted-model cache at a session temp dir, so tests never touch the user's cache.

    Set FSLM_TEST_CACHE_DIR to reuse a cache across sessions (the SmolLM2 conversion takes ~20 s).
    """
    reuse = os.environ.get("FSLM_TEST_CACHE_DIR")
    path = Path(reuse) if reuse else tmp_path_factory.mktemp("fslm-cache")
    previous = os.environ.get("FSLM_CACHE_DIR")
    os.environ["FSLM_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("FSLM_CACHE_DIR", None)
    else:
        os.environ["FSLM_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-adapters")
    return (
        make_tiny_adapter(tiny_model, root / "adapter-a", seed=1),
        make_tiny_adapter(tiny_model, root / "adapter-b", seed=2),
    )


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """A headless Chromium for the viewer's page tests; CI must have one."""
    from fslm.ui.browser import headless_chromium, missing_browser

    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(f"no headless browser: {reason}")
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()
