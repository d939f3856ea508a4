"""After the kernel: a finished notebook reopened with no kernel; its HTML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary
from playwright.sync_api import expect

from .headless import execute_notebook
from .pages import drawn_images, open_notebook, shoot_widget, shown_status, wait_until
from .servers import NOTEBOOKS

pytestmark = pytest.mark.browser

# (front-end, how the file was saved): "by-lab" is what JupyterLab and
# Notebook 7 write by default, trusted and without widget state; "elsewhere"
# is a file executed by another tool and received by mail or from GitHub:
# untrusted, with the widget state nbclient stores.
REOPENINGS = [("lab", "by-lab"), ("notebook", "by-lab"), ("lab", "elsewhere")]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart, executed headlessly in a real kernel and saved."""
    target = tmp_path_factory.mktemp("executed") / "quickstart.ipynb"
    execute_notebook(NOTEBOOKS / "quickstart.ipynb", target, store_widget_state=True)
    return target


def final_outputs(page) -> dict[str, object]:
    """The output areas of the page that hold a widget, by the status they show."""
    areas = page.locator(".jp-OutputArea-output:has(.shark-badge)")
    return {shown_status(areas.nth(i)): areas.nth(i) for i in range(areas.count())}


def check_final_states(page, artifacts: Path, name: str) -> None:
    """The three widgets show their ending, the complete one its image."""
    shown = wait_until(
        lambda: len(final_outputs(page)) == 3 and final_outputs(page), 30, "3 widgets"
    )
    assert sorted(shown) == ["complete", "failed", "moderated"]
    sizes = wait_until(lambda: drawn_images(shown["complete"]), 15, "the image")
    assert [s["natural"] for s in sizes] == [512] and sizes[0]["drawn"] > 100
    expect(shown["failed"].locator(".shark-error")).to_contain_text("No charge")
    expect(shown["moderated"].locator(".shark-moderated")).to_contain_text(
        "Blocked by content moderation"
    )
    assert "Error displaying widget" not in page.locator("body").inner_text()
    for status, area in shown.items():
        shoot_widget(page, area, artifacts / f"{name}-{status}.png")


@pytest.mark.parametrize(
    ("frontend", "saved"), REOPENINGS, ids=[f"{f}-{s}" for f, s in REOPENINGS]
)
def test_a_saved_notebook_reopened_with_no_kernel_shows_the_endings(
    executed, jupyter, jupyter_home, page, artifacts, frontend, saved
):
    notebook = nbformat.read(executed, as_version=4)
    # Without a kernel name or language the front-end asks which kernel to
    # start instead of starting one, and "No Kernel" is a button away.
    del notebook.metadata["kernelspec"], notebook.metadata["language_info"]
    if saved == "by-lab":
        del notebook.metadata["widgets"]
        NotebookNotary(data_dir=str(jupyter_home / ".local/share/jupyter")).sign(
            notebook
        )
    source = executed.with_name(f"reopened-{saved}.ipynb")
    nbformat.write(notebook, source)
    path = jupyter.copy_notebook(source)

    open_notebook(page, jupyter.url, path, frontend)
    page.locator(".jp-Dialog button", has_text="No Kernel").click()

    check_final_states(page, artifacts, f"{frontend}-reopened-{saved}")
    session = jupyter.session_for(path)
    assert session is None or session.get("kernel") is None


def test_the_html_export_shows_the_endings_offline(executed, browser, artifacts):
    html = executed.with_suffix(".html")
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(executed)],
        check=True,
        capture_output=True,
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Offline, as here and as for anyone reading the file without a network:
    # scripts a CDN would serve (the widget manager among them) never arrive.
    context.route("http*://**", lambda route: route.abort())
    page = context.new_page()
    try:
        page.goto(html.as_uri(), wait_until="domcontentloaded")
        check_final_states(page, artifacts, "nbconvert-html")
    finally:
        context.close()
