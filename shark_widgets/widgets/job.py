"""`JobWidget`: one SharkAPI job, watched live in a notebook."""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets

from ..client import SharkClient, default_client
from ..errors import SharkAPIError
from ..images import PREVIEW_WIDTH, make_preview
from ..models import Job, JobStatus, shorten
from ..polling import JobWatch, Poller, WatchTask, default_poller, shown_status
from . import render

logger = logging.getLogger(__name__)


class JobWidget(widgets.VBox):
    """A live view of one SharkAPI job: status badge, prompt, cost and image.

    Polling starts as soon as the widget is made, in the background, so the
    cell returns at once; it ends at a terminal state, or on `stop` or
    `close`. Observe `status` to react to changes, `wait` to block.

    Example:
        >>> from shark_widgets import JobWidget
        >>> widget = JobWidget.submit("a shark in neon kelp")  # doctest: +SKIP
        >>> widget                                             # doctest: +SKIP
        >>> widget.wait().cost                                 # doctest: +SKIP
        Decimal('0.01')
    """

    job_id = traitlets.Unicode(help="The job's id.", read_only=True)
    status = traitlets.Unicode(
        "unread",
        help="The job's status as last read; 'error' or 'timeout' if polling"
        " ended without a terminal status.",
    )
    note = traitlets.Unicode(
        "", help="What polling is doing about a fault (retrying, rate limited)."
    )
    message = traitlets.Unicode(
        "", help="Why polling ended without an image, when it did."
    )

    def __init__(
        self,
        job_id: str,
        client: SharkClient | None = None,
        interval: float = 2.0,
        *,
        timeout: float | None = None,
        show_elapsed: bool = True,
        job: Job | None = None,
        poller: Poller | None = None,
        **kwargs: Any,
    ) -> None:
        self._built = False
        self._lock = threading.Lock()
        self._task: WatchTask | None = None
        self._ticker: Any = None
        self._ended = threading.Event()
        self._settled = threading.Event()
        self._client = client or default_client()
        watch = JobWatch(
            self._client, job_id, interval=interval, timeout=timeout, fetch_image=True
        )
        self.set_trait("job_id", watch.job_id)
        self._job = job if job and job.job_id == watch.job_id else None
        self._full_image: bytes | None = None
        self._preview: bytes | None = None
        self._error: SharkAPIError | None = None
        self._display_ids: list[str] = []
        self._show_elapsed = show_elapsed
        # Parts are made with their first content and layout, so that opening
        # each one is its only message to the front-end.
        view = self._view()
        self._header = widgets.HTML(render.header(view))
        self._body = widgets.HTML(render.body(view))
        self._image = widgets.Image(
            format="jpeg",
            layout={"display": "none", "max_width": f"{PREVIEW_WIDTH}px"},
        )
        classes = ("shark-job-widget", *kwargs.pop("_dom_classes", ()))
        super().__init__(
            children=[self._header, self._body, self._image],
            _dom_classes=classes,
            **kwargs,
        )
        self._poller = poller or default_poller()
        self._render()
        self._built = True
        self._task = self._poller.follow(watch, self._on_step)
        if show_elapsed:
            self._ticker = self._poller.schedule(_Ticker(self), 1.0)

    @classmethod
    def submit(
        cls,
        prompt: str,
        mode: str = "1k",
        client: SharkClient | None = None,
        interval: float = 2.0,
        **kwargs: Any,
    ) -> JobWidget:
        """Submit ``prompt`` and return a widget watching the new job.

        Example:
            >>> JobWidget.submit("a hammerhead at dawn", mode="2k")  # doctest: +SKIP
        """
        client = client or default_client()
        job = client.generate(prompt, mode)
        return cls(job.job_id, client, interval, job=job, **kwargs)

    @property
    def job(self) -> Job | None:
        """The latest `Job` read from the service (None before the first read)."""
        return self._job

    @property
    def error(self) -> SharkAPIError | None:
        """The error that ended polling, if one did."""
        return self._error

    @property
    def image(self) -> bytes | None:
        """The full-size image, once the job is complete and it was downloaded."""
        return self._full_image

    @property
    def done(self) -> bool:
        """True once polling ended: terminal state, error, `stop` or `close`."""
        return self._ended.is_set()

    def save(self, path: str | Path) -> Path:
        """Write the full-size image to ``path`` and return the path."""
        if self._full_image is None:
            raise ValueError(
                f"job {self.job_id} has no image yet (status {self.status})"
            )
        target = Path(path)
        target.write_bytes(self._full_image)
        return target

    def wait(self, timeout: float | None = None) -> Job | None:
        """Block until polling ends and return the job, whatever its ending.

        Raises `TimeoutError` if ``timeout`` seconds pass first, and the error
        that ended polling if no job was ever read (for instance a 404).
        """
        if not self._settled.wait(timeout):
            doing = f" ({self.note})" if self.note else ""
            raise TimeoutError(
                f"job {self.job_id} is still {self.status} after {timeout} s{doing}"
            )
        if self._job is None and self._error is not None:
            raise self._error
        return self._job

    def stop(self) -> None:
        """Stop polling; the widget keeps showing what it knew."""
        self._end(show=True)

    def close(self) -> None:
        """Stop polling and close the widget and its parts in the front-end."""
        # NOTE: ipywidgets keeps every open widget in its registry until it is
        # closed, so a widget replaced by re-running its cell keeps listening
        # until then. It costs no extra request: reads of a job are shared.
        self._end(show=False)
        for child in self.children:
            child.close()
        super().close()

    def __repr__(self) -> str:
        if self._job is not None:
            text = str(self._job)
        else:
            text = f"{self.job_id}: {self.status}"
        if self._error is not None:
            text += f", {shorten(str(self._error), 80)}"
        return f"JobWidget({text})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/html"] = self._static_html()
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = self._display_bundle()
        if bundle is None:
            return
        display_id = f"shark-{self.model_id}-{len(self._display_ids)}"
        self._display_ids.append(display_id)
        display(bundle, raw=True, display_id=display_id)

    def _on_step(self, watch: JobWatch) -> None:
        try:
            self._absorb(watch)
        except Exception as exc:
            logger.exception("job %s: could not show the latest state", self.job_id)
            self._error = SharkAPIError(
                f"the widget could not show the job: {type(exc).__name__}: {exc}",
                job_id=self.job_id,
            )
            self._end(show=True)

    def _absorb(self, watch: JobWatch) -> None:
        if (
            not watch.done
            and (watch.job is None or watch.job == self._job)
            and (watch.image is None or self._full_image is not None)
            and watch.error is self._error
            and watch.note == self.note
        ):
            # Most polls of an active job change nothing: nothing to render.
            return
        if watch.job is not None:
            self._job = watch.job
        if watch.image is not None and self._full_image is None:
            self._full_image = watch.image
            self._preview = make_preview(watch.image)
        self._error = watch.error
        self.note = watch.note
        if watch.done:
            self._end(show=True)
        else:
            self._render()

    def _end(self, *, show: bool) -> None:
        """End polling once; with ``show``, draw the final state everywhere."""
        with self._lock:
            task, self._task = self._task, None
            ticker, self._ticker = self._ticker, None
            ending = not self._ended.is_set()
            self._ended.set()
        if task is not None:
            self._poller.unfollow(task, self._on_step)
        if ticker is not None:
            self._poller.cancel(ticker)
        try:
            if ending and show and self._built:
                self._render()
                self._update_displays()
        finally:
            # Only now may `wait` return: a notebook run headlessly stops
            # recording when its last cell ends, and would keep a stale state.
            self._settled.set()

    def _view(self) -> render.View:
        job = self._job
        status = shown_status(job, self._error)
        error = ""
        if self._error is not None:
            error = str(self._error)
        elif job is not None and job.status == JobStatus.FAILED:
            error = job.error or "The job failed. No charge was applied."
        return render.View(
            job_id=self.job_id,
            status=status,
            active=status in render.ACTIVE or (job is not None and not job.is_terminal),
            watching=not self._ended.is_set(),
            mode=job.mode if job else None,
            prompt=job.prompt if job else None,
            cost=job.cost if job else None,
            elapsed=self._elapsed(),
            note=self.note,
            error=error,
            moderated=job is not None and job.status == JobStatus.MODERATED,
        )

    def _render(self) -> None:
        view = self._view()
        self.status = view.status
        self.message = view.error
        self._header.value = render.header(view)
        self._body.value = render.body(view)
        if self._preview is not None and self._image.value != self._preview:
            with self._image.hold_sync():
                self._image.value = self._preview
                self._image.layout.display = None

    def _tick(self) -> None:
        self._header.value = render.header(self._view())

    def _elapsed(self) -> float | None:
        job = self._job
        if job is None or job.created_at is None:
            return None
        if job.completed_at is not None:
            end = job.completed_at
        elif job.is_terminal or self._ended.is_set() or not self._show_elapsed:
            # Without the ticker a live count would change on every poll and
            # cost a message each time: only a complete job's duration shows.
            return None
        else:
            end = datetime.now(timezone.utc)
        return max(0.0, (end - job.created_at).total_seconds())

    def _static_html(self) -> str:
        if not self._ended.is_set():
            return render.placeholder(self.job_id)
        return render.snapshot(self._view(), self._preview)

    def _display_bundle(self) -> dict[str, Any] | None:
        # Once polling has ended the widget never changes again, so its displays
        # become ordinary HTML. A front-end without the live model (a notebook
        # reopened later, nbconvert, GitHub) prefers the widget view to
        # text/html whenever both are there, and then shows an error or nothing.
        if self._ended.is_set():
            return {"text/plain": repr(self), "text/html": self._static_html()}
        return self._repr_mimebundle_()

    def _update_displays(self) -> None:
        if not self._display_ids:
            return
        from IPython.display import update_display

        bundle = self._display_bundle()
        if bundle is None:
            return
        for display_id in self._display_ids:
            update_display(bundle, raw=True, display_id=display_id)


class _Ticker:
    """Refreshes a widget's elapsed time once a second while its job is active."""

    def __init__(self, widget: JobWidget) -> None:
        self._widget = weakref.ref(widget)

    def run(self) -> float | None:
        widget = self._widget()
        if widget is None or widget.done:
            return None
        widget._tick()
        return 1.0
