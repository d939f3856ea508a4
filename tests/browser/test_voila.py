"""The quickstart served as an app by Voila."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .headless import HEADLESS_TIME_SCALE
from .pages import drawn_images, shoot_widget, shown_status, wait_until
from .servers import NOTEBOOKS, VoilaServer, jupyter_env

pytestmark = pytest.mark.browser


@pytest.fixture
def voila(jupyter_home: Path, tmp_path: Path) -> Iterator[VoilaServer]:
    """``voila`` serving a copy of the quickstart."""
    notebook = tmp_path / "quickstart.ipynb"
    shutil.copyfile(NOTEBOOKS / "quickstart.ipynb", notebook)
    env = jupyter_env(jupyter_home, SHARK_SIM_TIME_SCALE=HEADLESS_TIME_SCALE)
    server = VoilaServer(jupyter_home, notebook, env)
    try:
        # Any answer will do: asking for the app itself would run the notebook.
        server.wait_until_up("/api/status")
        yield server
    finally:
        server.stop()


def test_voila_renders_the_widgets_and_the_image(voila, page, artifacts):
    page.goto(voila.url, timeout=120_000)

    areas = page.locator(".jp-OutputArea-output:has(.shark-badge)")
    wait_until(
        lambda: (
            areas.count() == 3
            and {shown_status(areas.nth(i)) for i in range(3)}
            == {"complete", "failed", "moderated"}
        ),
        60,
        "the three endings",
    )
    complete = areas.filter(has=page.locator('.shark-badge[data-status="complete"]'))
    sizes = wait_until(lambda: drawn_images(complete), 15, "the image")
    assert [s["natural"] for s in sizes] == [512] and sizes[0]["drawn"] > 100
    expect(complete.locator(".shark-prompt")).to_have_text(
        "A great white shark in bioluminescent waters"
    )
    # Drawn by the widget manager from the live model, not a static copy.
    assert page.locator(".shark-job-widget").count() == 3
    assert "Error displaying widget" not in page.locator("body").inner_text()
    shoot_widget(page, complete, artifacts / "voila-complete.png")
