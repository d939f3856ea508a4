"""The quickstart, run by hand in JupyterLab 4 and Notebook 7, watched live."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import expect

from .pages import (
    badge_history,
    drawn_images,
    image_sizes,
    job_id_in,
    open_notebook,
    outputs,
    record_badges,
    run_all,
    run_cell,
    save_history,
    shoot_widget,
    shown_status,
    statuses,
    wait_until,
)
from .servers import NOTEBOOKS, OWN_NOTEBOOKS

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.browser
FRONTENDS = ["lab", "notebook"]
QUICKSTART = NOTEBOOKS / "quickstart.ipynb"
HOSTILE = OWN_NOTEBOOKS / "hostile_prompt.ipynb"
HOSTILE_PROMPT = "<img src=x onerror=\"document.title='owned'\">"


def code_cell(path: Path, text: str) -> int:
    """The index of the one cell of ``path`` whose source contains ``text``."""
    cells = nbformat.read(path, as_version=4).cells
    found = [i for i, c in enumerate(cells) if text in c.source]
    assert len(found) == 1, f"{len(found)} cells of {path.name} contain {text!r}"
    return found[0]


SETUP = code_cell(QUICKSTART, "SharkSimulator(")
JOB = code_cell(QUICKSTART, "job = JobWidget.submit(")
ANSWER = code_cell(QUICKSTART, "1 + 1")
FAILED = code_cell(QUICKSTART, "failed = JobWidget.submit(")
MODERATED = code_cell(QUICKSTART, "moderated = JobWidget.submit(")
WAIT = code_cell(QUICKSTART, ".wait(")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_quickstart_shows_the_job_live_while_the_kernel_stays_free(
    jupyter, page, artifacts, frontend
):
    path = jupyter.copy_notebook(QUICKSTART)
    open_notebook(page, jupyter.url, path, frontend)
    jupyter.wait_for_kernel(path)
    record_badges(page)

    run_cell(page, SETUP)
    expect(outputs(page, SETUP).first).to_contain_text(
        "using the local simulator", timeout=30_000
    )
    run_cell(page, JOB)
    job = outputs(page, JOB)
    wait_until(lambda: shown_status(job), 30, "the widget")
    if shown_status(job) == "queued":
        shoot_widget(page, job, artifacts / f"{frontend}-queued.png")
    wait_until(lambda: shown_status(job) == "processing", 30, "processing")
    shoot_widget(page, job, artifacts / f"{frontend}-processing.png")

    asked = time.monotonic()
    run_cell(page, ANSWER)
    expect(outputs(page, ANSWER).first).to_have_text("2", timeout=10_000)
    answered_in = time.monotonic() - asked
    still = shown_status(job)
    run_cell(page, FAILED)
    run_cell(page, MODERATED)
    wait_until(lambda: shown_status(job) == "complete", 60, "complete")
    sizes = wait_until(lambda: drawn_images(job), 15, "the image to load")
    run_cell(page, WAIT)
    expect(outputs(page, WAIT).first).to_contain_text("image bytes", timeout=60_000)

    history = badge_history(page)
    save_history(
        history, artifacts / f"{frontend}-badges.json", answer_seconds=answered_in
    )
    seen = history[job_id_in(job)]
    logger.info(
        "%s: the badge showed %s, answer in %.2f s", frontend, seen, answered_in
    )
    assert statuses(seen) == ["queued", "processing", "complete"]
    queued_for = seen[1].at - seen[0].at
    processing_for = seen[2].at - seen[1].at
    assert queued_for > 0.5 and processing_for > 1.0, seen
    assert still == "processing", "1 + 1 was answered only after the job ended"
    assert answered_in < 3.0
    assert [s["natural"] for s in sizes] == [512]
    assert sizes[0]["height"] > 100 and sizes[0]["drawn"] > 100
    assert outputs(page, JOB).count() == 1
    assert outputs(page, ANSWER).count() == 1
    assert outputs(page, ANSWER).first.inner_text().strip() == "2"
    for index in range(page.locator(".jp-Notebook .jp-Cell").count()):
        badges = outputs(page, index).locator(".shark-badge").count()
        assert badges == (index in (JOB, FAILED, MODERATED)), f"cell {index}"
        if index != JOB:
            assert not image_sizes(outputs(page, index)), f"an image in cell {index}"
    shoot_widget(page, job, artifacts / f"{frontend}-complete.png")

    failed, moderated = outputs(page, FAILED), outputs(page, MODERATED)
    assert shown_status(failed) == "failed"
    expect(failed.locator(".shark-error")).to_contain_text("No charge applied")
    assert statuses(history[job_id_in(failed)])[-1] == "failed"
    assert shown_status(moderated) == "moderated"
    expect(moderated.locator(".shark-moderated")).to_contain_text(
        "Blocked by content moderation"
    )
    assert statuses(history[job_id_in(moderated)])[-1] == "moderated"
    assert not image_sizes(failed) and not image_sizes(moderated)
    shoot_widget(page, failed, artifacts / f"{frontend}-failed.png")
    shoot_widget(page, moderated, artifacts / f"{frontend}-moderated.png")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_prompt_made_of_html_is_shown_as_text(jupyter, page, artifacts, frontend):
    path = jupyter.copy_notebook(HOSTILE)
    open_notebook(page, jupyter.url, path, frontend)
    jupyter.wait_for_kernel(path)
    title = page.title()

    run_all(page)
    area = outputs(page, code_cell(HOSTILE, "hostile = "))
    wait_until(lambda: shown_status(area) == "complete", 60, "complete")
    wait_until(lambda: drawn_images(area), 15, "the image to load")
    expect(outputs(page, code_cell(HOSTILE, ".wait(")).first).to_contain_text(
        "complete"
    )

    assert page.title() == title != "owned"
    expect(area.locator(".shark-prompt")).to_have_text(HOSTILE_PROMPT)
    assert page.locator("img[onerror]").count() == 0
    assert page.locator('img[src="x"]').count() == 0
    shoot_widget(page, area, artifacts / f"{frontend}-hostile-prompt.png")
