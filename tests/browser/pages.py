"""Driving JupyterLab 4 and Notebook 7 pages the way a person does."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Locator, Page

logger = logging.getLogger(__name__)

FRONTENDS = {
    # ``reset`` opens a clean workspace: no tab left over from an earlier test.
    "lab": "/lab/tree/{path}?reset",
    "notebook": "/notebooks/{path}",
}

# Records every status each badge showed, keyed by job id, with the time (s
# since the recorder started) it first showed it. A badge is redrawn on every
# change, and the whole widget is replaced by a static copy at the end, so the
# observer watches the document rather than one element.
BADGE_RECORDER = """() => {
  if (window.sharkBadges) { return; }
  const seen = (window.sharkBadges = {});
  const start = performance.now();
  const scan = () => {
    for (const badge of document.querySelectorAll('.shark-badge')) {
      const meta = badge.parentElement.querySelector('.shark-meta');
      const job = meta ? meta.textContent.split(' · ')[0].trim() : '?';
      const history = seen[job] || (seen[job] = []);
      const status = badge.dataset.status;
      if (!history.length || history[history.length - 1].status !== status) {
        history.push({status, at: (performance.now() - start) / 1000});
      }
    }
  };
  new MutationObserver(scan).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
  scan();
}"""

# The union of the boxes of what a widget draws (badge line, prompt, notices,
# image), for a screenshot cropped to the widget rather than the output area.
WIDGET_BOX = """(box) => {
  const parts = box.querySelectorAll(
    '.shark-badge, .shark-meta, .shark-prompt, .shark-note, .shark-error,'
    + ' .shark-moderated, img');
  let left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity;
  for (const part of parts) {
    const r = part.getBoundingClientRect();
    if (!r.width || !r.height) { continue; }
    const text = part.matches('.shark-prompt, .shark-note, .shark-error,'
      + ' .shark-moderated');
    let end = r.right;
    if (text) {
      // A block spans the whole output area; its text ends much sooner.
      const range = document.createRange();
      range.selectNodeContents(part);
      end = range.getBoundingClientRect().right + 8;
    }
    left = Math.min(left, r.left); top = Math.min(top, r.top);
    right = Math.max(right, end); bottom = Math.max(bottom, r.bottom);
  }
  return {x: left, y: top, width: right - left, height: bottom - top};
}"""


@dataclass(frozen=True)
class Seen:
    """One status a badge showed, and when (seconds since recording began)."""

    status: str
    at: float


def open_notebook(page: Page, base_url: str, path: str, frontend: str) -> None:
    """Open the notebook at ``path`` in ``frontend`` and wait for its cells."""
    page.goto(base_url + FRONTENDS[frontend].format(path=quote(path)))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)


def record_badges(page: Page) -> None:
    """Start recording every status shown by every badge on the page."""
    page.evaluate(BADGE_RECORDER)


def badge_history(page: Page) -> dict[str, list[Seen]]:
    """What each job's badge has shown so far, oldest first, by job id."""
    raw = page.evaluate("() => window.sharkBadges || {}")
    return {job: [Seen(**entry) for entry in seen] for job, seen in raw.items()}


def statuses(history: list[Seen]) -> list[str]:
    """The statuses alone, in the order they were shown."""
    return [entry.status for entry in history]


def cell(page: Page, index: int) -> Locator:
    """The notebook's cell at ``index`` (markdown cells count)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def outputs(page: Page, index: int) -> Locator:
    """The outputs of the cell at ``index``."""
    return cell(page, index).locator(".jp-OutputArea-output")


def run_cell(page: Page, index: int) -> None:
    """Run one code cell: select it, leave edit mode, Shift+Enter."""
    cell(page, index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")


def run_all(page: Page) -> None:
    """Run every cell through the menu bar: Run, then Run All Cells."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``condition`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s, still waiting for {what}")
        time.sleep(interval)


def job_box(area: Locator) -> Locator:
    """The widget (live or its static copy) inside an output area."""
    return area.locator(".shark-job-widget, .shark-job").first


def shown_status(area: Locator) -> str | None:
    """The status the badge inside ``area`` shows now, if there is one."""
    badge = area.locator(".shark-badge")
    if badge.count() == 0:
        return None
    # An untrusted notebook's HTML is sanitized, which drops data attributes.
    return badge.first.get_attribute("data-status") or badge.first.inner_text().strip()


def job_id_in(area: Locator) -> str:
    """The job id a widget's header shows."""
    return area.locator(".shark-meta").first.inner_text().split("·")[0].strip()


def image_sizes(area: Locator) -> list[dict[str, float]]:
    """Natural and drawn sizes of the images in ``area`` that have loaded."""
    return area.locator("img").evaluate_all(
        """(images) => images
             .filter((img) => img.complete && img.naturalWidth > 0)
             .map((img) => ({natural: img.naturalWidth, height: img.naturalHeight,
                             drawn: img.getBoundingClientRect().width}))"""
    )


def drawn_images(area: Locator) -> list[dict[str, float]]:
    """The loaded images in ``area`` that are laid out with a real width.

    An image widget gets its bytes and is then shown: between the two
    messages it has loaded but is not drawn yet.
    """
    return [size for size in image_sizes(area) if size["drawn"] > 0]


def shoot_widget(page: Page, area: Locator, path: Path) -> Path:
    """Save a screenshot of the widget in ``area``, cropped to what it draws."""
    box = job_box(area)
    box.scroll_into_view_if_needed()
    clip = box.evaluate(WIDGET_BOX)
    # Less room above than elsewhere: the cell's input border sits right there.
    side, top = 8, 3
    page.screenshot(
        path=path,
        clip={
            "x": max(clip["x"] - side, 0),
            "y": max(clip["y"] - top, 0),
            "width": clip["width"] + 2 * side,
            "height": clip["height"] + top + side,
        },
    )
    logger.info("screenshot %s", path)
    return path


def save_history(history: dict[str, list[Seen]], path: Path, **extra: Any) -> None:
    """Write a badge history (and ``extra`` facts) as JSON next to the screenshots."""
    badges = {
        job: [{"status": s.status, "at": round(s.at, 2)} for s in seen]
        for job, seen in history.items()
    }
    path.write_text(json.dumps({"badges": badges, **extra}, indent=1))
