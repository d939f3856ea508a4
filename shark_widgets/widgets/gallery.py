"""`JobGallery`: a batch of jobs in one light widget, images in a grid."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from html import escape
from typing import Any

import ipywidgets as widgets
import traitlets

from ..client import SharkClient, default_client, validate_submission
from ..images import make_preview
from ..models import Job, JobStatus, shorten
from ..polling import JobWatch, Poller, WatchTask, default_poller
from . import render

THUMBNAIL_WIDTH = 256


class JobGallery(widgets.VBox):
    """Many jobs at once: a live summary line, then each image as it arrives.

    Made for prompt sweeps and batches of hundreds: a job still running costs
    no widget of its own. One summary line counts the jobs by status (and sums
    what they cost); a tile, a thumbnail with its prompt, appears for each
    complete job, in the order the jobs were added, and a line for each job
    that failed or was moderated. All jobs are polled by the shared poller.

    Example:
        >>> gallery = JobGallery()                                  # doctest: +SKIP
        >>> gallery.submit([f"a shark, style {n}" for n in range(8)])  # doctest: +SKIP
        >>> gallery                                                 # doctest: +SKIP
    """

    # NOTE: unlike a JobWidget, the gallery leaves no static copy in the cell's
    # output when its jobs end: a renderer without widgets (GitHub, an offline
    # HTML export) shows it only from saved widget state. A gallery can grow
    # after it has settled, so there is no moment when its copy is final.

    counts = traitlets.Dict(help="How many jobs are in each status.")

    def __init__(
        self,
        job_ids: Iterable[str] = (),
        client: SharkClient | None = None,
        interval: float = 2.0,
        *,
        columns: int = 4,
        poller: Poller | None = None,
        **kwargs: Any,
    ) -> None:
        self._client = client or default_client()
        self._interval = interval
        self._poller = poller or default_poller()
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._watches: dict[str, JobWatch] = {}
        self._tasks: dict[str, WatchTask] = {}
        self._images: dict[str, bytes] = {}
        self._seen: dict[str, tuple[str, bool]] = {}
        self._tiles: dict[str, widgets.VBox] = {}
        self._all_done = threading.Event()
        self._all_done.set()
        self._summary = widgets.HTML()
        self._problems = widgets.HTML()
        self._grid = widgets.GridBox(
            layout={
                "grid_template_columns": f"repeat({columns}, minmax(0, 1fr))",
                "grid_gap": "6px",
            }
        )
        super().__init__(children=[self._summary, self._problems, self._grid], **kwargs)
        self.add_class("shark-job-gallery")
        for job_id in job_ids:
            self.add(job_id)
        self._refresh()

    @property
    def jobs(self) -> dict[str, Job | None]:
        """Each job id with its latest `Job` (None before its first read)."""
        with self._lock:
            return {job_id: watch.job for job_id, watch in self._watches.items()}

    def image(self, job_id: str) -> bytes | None:
        """The full-size image of a complete job (None until it arrives).

        Raises `KeyError` for a job the gallery does not watch.
        """
        if job_id not in self._watches:
            raise KeyError(f"job {job_id!r} is not in this gallery")
        return self._images.get(job_id)

    def add(self, job_id: str, job: Job | None = None) -> None:
        """Watch one more job (``job`` is what is already known of it)."""
        watch = JobWatch(
            self._client, job_id, interval=self._interval, fetch_image=True
        )
        watch.job = job
        with self._lock:
            if watch.job_id in self._watches:
                return
            self._watches[watch.job_id] = watch
            self._all_done.clear()
        self._tasks[watch.job_id] = self._poller.follow(watch, self._on_step)

    def submit(self, prompts: str | Iterable[str], mode: str = "1k") -> list[Job]:
        """Submit each prompt and watch the new jobs; return them.

        Every prompt is checked before the first is sent, so a bad one does
        not leave a batch half paid for. A single string is one prompt.
        """
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        for prompt in batch:
            validate_submission(prompt, mode)
        jobs = []
        for prompt in batch:
            job = self._client.generate(prompt, mode)
            self.add(job.job_id, job)
            jobs.append(job)
        self._refresh()
        return jobs

    def wait(self, timeout: float | None = None) -> dict[str, Job | None]:
        """Block until every job has ended; `TimeoutError` after ``timeout``."""
        if not self._all_done.wait(timeout):
            raise TimeoutError(f"still running after {timeout} s: {self.counts}")
        return self.jobs

    def stop(self) -> None:
        """Stop polling every job."""
        with self._lock:
            tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            self._poller.unfollow(task, self._on_step)
        self._all_done.set()

    def close(self) -> None:
        """Stop polling and close the gallery and its tiles."""
        self.stop()
        for tile in self._grid.children:
            for part in tile.children:
                part.close()
            tile.close()
        for child in self.children:
            child.close()
        super().close()

    def __repr__(self) -> str:
        return f"JobGallery({_summary_text(self.counts, self._total_cost())})"

    def _on_step(self, watch: JobWatch) -> None:
        if watch.image is not None and watch.job_id not in self._images:
            self._images[watch.job_id] = watch.image
            self._add_tile(watch)
        seen = (watch.status, watch.done)
        if self._seen.get(watch.job_id) != seen:
            self._seen[watch.job_id] = seen
            self._refresh()

    def _add_tile(self, watch: JobWatch) -> None:
        assert watch.image is not None and watch.job is not None
        picture = widgets.Image(
            value=make_preview(watch.image, THUMBNAIL_WIDTH),
            format="jpeg",
            layout={"width": "100%"},
        )
        caption = widgets.HTML(
            f'<div title="{escape(watch.job.prompt or "")}" style="font:12px/1.4 '
            "system-ui,sans-serif;overflow:hidden;text-overflow:ellipsis;"
            f'white-space:nowrap">{escape(shorten(watch.job.prompt or watch.job_id))}'
            "</div>"
        )
        tile = widgets.VBox([picture, caption])
        with self._lock:
            self._tiles[watch.job_id] = tile
            order = list(self._watches)
            self._grid.children = tuple(
                self._tiles[job_id] for job_id in order if job_id in self._tiles
            )

    def _refresh(self) -> None:
        # Workers finish jobs concurrently: one refresh at a time, so an older
        # count never overwrites a newer one.
        with self._refreshing:
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            watches = list(self._watches.values())
        counts = Counter(watch.status for watch in watches)
        self.counts = dict(counts)
        self._summary.value = (
            '<div class="shark-summary" style="font:13px/1.7 system-ui,sans-serif">'
            + "".join(
                render.badge(status, active=status in render.ACTIVE)
                + f" {number} &nbsp;"
                for status, number in sorted(counts.items())
            )
            + escape(f"{len(watches)} jobs · ${self._total_cost()}")
            + "</div>"
        )
        self._problems.value = "".join(
            f"<div>{render.badge(watch.status, active=False)} "
            f"{escape(watch.job_id)} {escape(_quoted_prompt(watch))}: "
            f"{escape(_problem(watch))}</div>"
            for watch in watches
            if watch.done and watch.status != JobStatus.COMPLETE
        )
        if watches and all(watch.done for watch in watches):
            self._all_done.set()

    def _total_cost(self) -> Decimal:
        with self._lock:
            costs = [w.job.cost for w in self._watches.values() if w.job and w.job.cost]
        return sum(costs, Decimal("0.00"))


def _problem(watch: JobWatch) -> str:
    if watch.error is not None:
        return str(watch.error)
    if watch.job is not None and watch.job.status == JobStatus.MODERATED:
        return "blocked by content moderation"
    return (watch.job.error if watch.job else None) or "failed"


def _quoted_prompt(watch: JobWatch) -> str:
    prompt = watch.job.prompt if watch.job else None
    return repr(shorten(prompt, 60)) if prompt else ""


def _summary_text(counts: dict[str, int], cost: Decimal) -> str:
    parts = [f"{number} {status}" for status, number in sorted(counts.items())]
    return ", ".join([*parts, f"${cost}"])
