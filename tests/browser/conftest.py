"""Fixtures for the browser tests: one Jupyter server and one Chromium per run.

Browser tests carry ``@pytest.mark.browser``. They run whenever Chromium is
installed; without it they are skipped, except in CI (``CI=true``), where a
missing browser is a failure.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import ROOT, JupyterServer, jupyter_env

logger = logging.getLogger(__name__)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 900}
FAILED = pytest.StashKey[bool]()


def find_chromium() -> str | None:
    """Debian's Chromium, where it is installed."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_for_browser_tests() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if find_chromium() is None:
        return "Chromium is not installed (Debian: apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser") is None:
        return
    missing = missing_for_browser_tests()
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {missing}", pytrace=False)
    pytest.skip(missing)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and badge histories go (``SHARK_ARTIFACTS`` overrides)."""
    target = Path(os.environ.get("SHARK_ARTIFACTS", ROOT / "artifacts" / "browser"))
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture(scope="session")
def jupyter_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home directory holding every Jupyter and IPython setting of the run."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def jupyter(
    jupyter_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """``jupyter lab`` on loopback, serving JupyterLab 4 and Notebook 7."""
    missing = missing_for_browser_tests()
    if missing is not None:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("served")
    server = JupyterServer(jupyter_home, root, jupyter_env(jupyter_home))
    try:
        server.wait_until_up("/api/status")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright."""
    missing = missing_for_browser_tests()
    if missing is not None:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator:
    """A fresh page; on failure, a screenshot of it lands in the artifacts."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    if request.node.stash.get(FAILED, False):
        name = request.node.name.replace("[", "-").replace("]", "")
        tab.screenshot(path=artifacts / f"FAILED-{name}.png", full_page=True)
        logger.error("page errors: %s", errors)
    context.close()
