"""The project's notebooks, executed in a real kernel."""

import base64
import io
import json
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from .notebook_runs import run_notebook

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def execute(path: Path, tmp_path: Path) -> nbformat.NotebookNode:
    return run_notebook(nbformat.read(path, as_version=4), tmp_path, timeout=180)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> nbformat.NotebookNode:
    return execute(NOTEBOOKS / "quickstart.ipynb", tmp_path_factory.mktemp("run"))


def html_values(notebook):
    states = notebook.metadata["widgets"][WIDGET_STATE]["state"]
    return [
        s["state"]["value"] for s in states.values() if s["model_name"] == "HTMLModel"
    ]


def test_quickstart_says_it_uses_the_simulator(quickstart):
    first = quickstart.cells[1].outputs[0]

    assert "No SHARKAPI_TOKEN: using the local simulator" in first["text"]


def test_quickstart_saves_the_final_statuses_in_widget_state(quickstart):
    badges = [v for v in html_values(quickstart) if "shark-badge" in v]

    statuses = sorted(v.split('data-status="')[1].split('"')[0] for v in badges)
    assert statuses == ["complete", "failed", "moderated"]


def test_quickstart_saves_the_image_in_widget_state(quickstart):
    states = quickstart.metadata["widgets"][WIDGET_STATE]["state"]
    images = [s for s in states.values() if s["model_name"] == "ImageModel"]
    shown = [s for s in images if any(b["data"] for b in s.get("buffers", []))]

    assert len(shown) == 1
    data = base64.b64decode(shown[0]["buffers"][0]["data"])
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "JPEG" and 0 < picture.width <= 512


def test_quickstart_outputs_hold_the_final_state_for_static_renderers(quickstart):
    outputs = [o for cell in quickstart.cells for o in cell.get("outputs", [])]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]

    assert len(html) == 3
    assert any('data-status="complete"' in h and "data:image/jpeg" in h for h in html)
    assert any('data-status="failed"' in h for h in html)
    assert any('data-status="moderated"' in h for h in html)


def test_quickstart_last_cell_reports_the_endings(quickstart):
    text = "".join(output["text"] for output in quickstart.cells[-1].outputs)

    assert ": complete, 1k, $0.01" in text
    assert ": failed" in text and ": moderated" in text
    assert json.dumps(quickstart.metadata["widgets"]).count("shark-badge") == 3


def test_gallery_notebook_ends_with_every_job_of_the_sweep(tmp_path):
    notebook = execute(NOTEBOOKS / "gallery.ipynb", tmp_path)

    text = "".join(output["text"] for output in notebook.cells[-1].outputs)
    assert "JobGallery(11 complete, 1 moderated, $0.11)" in text
    states = notebook.metadata["widgets"][WIDGET_STATE]["state"].values()
    tiles = [s for s in states if s["model_name"] == "ImageModel"]
    assert len(tiles) == 11
