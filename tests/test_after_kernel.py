"""After the kernel: a finished notebook keeps its endings as ordinary outputs.

Static renderers (nbconvert, GitHub, a notebook reopened later) have no live
widget model. They prefer a widget view to ``text/html`` whenever both are
there, so each finished widget must be saved as plain HTML alone.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from shark_widgets import JobWidget

from .browser.headless import execute_notebook
from .browser.servers import NOTEBOOKS
from .conftest import INTERVAL

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ENDINGS = ["complete", "failed", "moderated"]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart, executed headlessly (widget state stored) and saved."""
    target = tmp_path_factory.mktemp("after-kernel") / "quickstart.ipynb"
    execute_notebook(NOTEBOOKS / "quickstart.ipynb", target, store_widget_state=True)
    return target


class ShownParts(HTMLParser):
    """Badges and images of an HTML page that a reader sees (not inside scripts)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[str] = []
        self.images: list[str] = []
        self.widget_views = 0
        self._in_script = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self._in_script += 1
            self.widget_views += named.get("type") == WIDGET_VIEW
        if self._in_script:
            return
        classes = (named.get("class") or "").split()
        if "shark-badge" in classes:
            self.statuses.append(named.get("data-status") or "")
        if tag == "img" and "shark-image" in classes:
            self.images.append(named.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script -= 1


def jpeg_width(data_uri: str) -> int:
    """The width of the JPEG in a ``data:image/jpeg;base64,`` URI."""
    prefix = "data:image/jpeg;base64,"
    assert data_uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(data_uri[len(prefix) :]))) as image:
        assert image.format == "JPEG"
        return image.width


def test_each_finished_widget_is_saved_as_its_final_snapshot(executed):
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    shown = [
        o for o in outputs if "shark-badge" in o.get("data", {}).get("text/html", "")
    ]

    assert len(shown) == 3
    for output in shown:
        assert set(output["data"]) == {"text/html", "text/plain"}
        assert output["data"]["text/plain"].startswith("JobWidget(job_")
        assert "shark-spinner" not in output["data"]["text/html"]
    parts = ShownParts()
    for output in shown:
        parts.feed(output["data"]["text/html"])
    assert parts.statuses == ENDINGS
    assert [jpeg_width(src) for src in parts.images] == [512]
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in outputs)


def test_the_html_export_shows_the_endings_without_scripts(executed):
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(executed)],
        check=True,
        capture_output=True,
    )
    parts = ShownParts()
    parts.feed(executed.with_suffix(".html").read_text())

    assert parts.statuses == ENDINGS
    assert [jpeg_width(src) for src in parts.images] == [512]
    assert parts.widget_views == 0


def test_wait_returns_only_once_the_final_state_is_shown(client, poller, monkeypatch):
    # A headless run stops recording when its last cell, often a `wait`, ends.
    shown = []
    update = JobWidget._update_displays

    def slow_update(widget):
        time.sleep(0.3)
        update(widget)
        shown.append(widget.status)

    monkeypatch.setattr(JobWidget, "_update_displays", slow_update)
    widget = JobWidget.submit(
        "a reef shark", client=client, interval=INTERVAL, poller=poller
    )

    widget.wait(timeout=30)

    assert shown == ["complete"]
