"""Polling: what each answer of the service means, and one scheduler for all jobs.

`JobWatch` holds the contract logic for one job: it reads the job, decides
what an answer means (a new status, a transient fault to retry, a permanent
error), and says how long to wait before the next read. It never sleeps.

`Poller` runs many watches: one heap of due times, shared by a small, fixed
pool of worker threads that each take the next due read, so a thousand jobs
cost a handful of threads. `JobWidget` and `JobGallery` share the process-wide
`default_poller()`.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import (
    AuthenticationError,
    ContractError,
    ImageExpiredError,
    JobFailedError,
    JobModeratedError,
    JobNotFoundError,
    PollingCrashed,
    PollingTimeout,
    RequestRejectedError,
    ServiceUnavailableError,
    SharkAPIError,
)
from .models import Job, JobStatus, validate_job_id

if TYPE_CHECKING:
    from .client import SharkClient

logger = logging.getLogger(__name__)

BACKOFF_CAP = 60.0
JITTER = 0.05
MAX_BAD_ANSWERS = 5
_RANK = {JobStatus.QUEUED: 0, JobStatus.PROCESSING: 1}


class JobWatch:
    """The contract logic of following one job to its end.

    Each call of `step` makes one request and returns the seconds to wait
    before the next call, or None once the watch is over: the job reached a
    terminal state (and, with ``fetch_image``, its image was downloaded), or
    an error ended it (``error``). Backoff only ever lengthens the wait, so a
    job is never read more than once per ``interval``; a status never goes
    backwards (a stale ``queued`` after ``processing`` is ignored).

    Example:
        >>> watch = JobWatch(client, "job_8f2a9d3c", interval=2.0)  # doctest: +SKIP
        >>> watch.run()                                              # doctest: +SKIP
        >>> watch.job.status                                         # doctest: +SKIP
        <JobStatus.COMPLETE: 'complete'>
    """

    def __init__(
        self,
        client: SharkClient,
        job_id: str,
        *,
        interval: float = 2.0,
        timeout: float | None = None,
        fetch_image: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not interval > 0:
            raise ValueError(
                f"interval must be a positive number of seconds: {interval!r}"
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive or None: {timeout!r}")
        self.client = client
        self.job_id = validate_job_id(job_id)
        self.interval = float(interval)
        self.fetch_image = fetch_image
        self._clock = clock
        self._rng = rng
        self.started = clock()
        self.deadline = None if timeout is None else self.started + timeout
        self.job: Job | None = None
        self.image: bytes | None = None
        self.error: SharkAPIError | None = None
        self.note = ""
        self.requests = 0
        self.failures = 0
        self._bad_answers = 0
        self._image_rereads = 0
        self._relink = False
        self._peak = -1
        self.done = False

    def __repr__(self) -> str:
        status = self.job.status if self.job else "unread"
        return f"JobWatch({self.job_id!r}, status={status!s}, done={self.done})"

    @property
    def status(self) -> str:
        """The status to show: the job's, or ``timeout`` / ``error`` if one ended it."""
        return shown_status(self.job, self.error)

    def step(self) -> float | None:
        """Make one request; return the delay before the next step, or None when over.

        The delay never runs past the deadline, so a timeout fires on time.
        """
        delay = self._step()
        if delay is not None and self.deadline is not None:
            delay = max(0.0, min(delay, self.deadline - self._clock()))
        return delay

    def _step(self) -> float | None:
        if self.done:
            return None
        if self.deadline is not None and self._clock() >= self.deadline:
            waited = self._clock() - self.started
            return self._end(
                PollingTimeout(
                    f"timed out after {_seconds(waited)}: the job is still"
                    f" {self.status}; it may yet finish on the service",
                    job_id=self.job_id,
                )
            )
        self.requests += 1
        try:
            if self._needs_image():
                return self._download_image()
            return self._read_job()
        except (AuthenticationError, JobNotFoundError, RequestRejectedError) as exc:
            return self._end(exc)
        except ImageExpiredError as exc:
            if self._image_rereads >= 1:
                return self._end(
                    ImageExpiredError(
                        f"{exc}, and reading the job again gave no working link",
                        job_id=self.job_id,
                    )
                )
            self._image_rereads += 1
            # The job stays complete on the badge while a fresh link is read.
            self._relink = True
            self.note = "image link expired: reading the job again for a fresh link"
            return self.interval
        except ContractError as exc:
            self._bad_answers += 1
            if self._bad_answers >= MAX_BAD_ANSWERS:
                return self._end(
                    ContractError(
                        f"the service broke its contract {self._bad_answers} times"
                        f" in a row: {exc}",
                        job_id=self.job_id,
                    )
                )
            return self._retry_later(exc, None)
        except ServiceUnavailableError as exc:
            return self._retry_later(exc, exc.retry_after)

    def fail(self, exc: BaseException) -> None:
        """End the watch because the polling code itself raised ``exc``."""
        self._end(
            PollingCrashed(
                f"polling stopped on an internal error: {type(exc).__name__}: {exc}",
                job_id=self.job_id,
            )
        )

    def result(self) -> Job:
        """The complete job once the watch is over, or the error its ending means.

        Raises the error that ended the watch, `JobFailedError` or
        `JobModeratedError`; `RuntimeError` while the watch is not over.
        """
        if not self.done:
            raise RuntimeError(f"job {self.job_id} is still being watched")
        if self.error is not None:
            raise self.error
        assert self.job is not None
        if self.job.status == JobStatus.FAILED:
            raise JobFailedError(self.job.error or "the job failed", job=self.job)
        if self.job.status == JobStatus.MODERATED:
            raise JobModeratedError("blocked by content moderation", job=self.job)
        return self.job

    def run(self, sleep: Callable[[float], object] | None = None) -> None:
        """Step until the watch is over, sleeping between steps (blocking)."""
        sleep = sleep or time.sleep
        while (delay := self.step()) is not None:
            sleep(delay)

    def _read_job(self) -> float | None:
        job = self.client.get_job(self.job_id)
        if job.status == JobStatus.COMPLETE:
            if not job.image_url:
                raise ContractError(
                    "the job is complete but has no image_url", job_id=self.job_id
                )
            from .client import check_url

            try:
                check_url(job.image_url, what="image URL")
            except ValueError as exc:
                raise ContractError(str(exc), job_id=self.job_id) from exc
        self._recovered()
        if self._accepts(job):
            self.job = job
            self._peak = max(self._peak, _RANK.get(job.status, -1))
        self._relink = False
        if self._needs_image():
            return 0.0
        if self.job is not None and self.job.is_terminal:
            return self._end(None)
        return self.interval * (1.0 + JITTER * self._rng())

    def _download_image(self) -> float | None:
        assert self.job is not None and self.job.image_url
        self.image = self.client.fetch_image(self.job.image_url)
        self._recovered()
        return self._end(None)

    def _accepts(self, job: Job) -> bool:
        """Whether ``job`` may replace the one shown: statuses never go backwards."""
        if self.job is None:
            return True
        if self.job.is_terminal:
            return self._relink and job.status == JobStatus.COMPLETE
        rank = _RANK.get(job.status)
        peak = max(self._peak, _RANK.get(self.job.status, -1))
        return rank is None or rank >= peak

    def _needs_image(self) -> bool:
        return (
            self.fetch_image
            and not self._relink
            and self.image is None
            and self.job is not None
            and self.job.status == JobStatus.COMPLETE
            and bool(self.job.image_url)
        )

    def _recovered(self) -> None:
        if self.failures or self._bad_answers:
            logger.info("job %s: the service answers again", self.job_id)
        self.failures = 0
        self._bad_answers = 0
        self.note = ""

    def _retry_later(self, exc: SharkAPIError, retry_after: float | None) -> float:
        self.failures += 1
        ceiling = min(BACKOFF_CAP, self.interval * 2.0**self.failures)
        delay = max(self.interval, ceiling * (0.5 + 0.5 * self._rng()))
        if retry_after is not None:
            delay = max(delay, retry_after)
            limited = getattr(exc, "status_code", None) == 429
            self.note = (
                f"waiting {_seconds(delay)} as the service asked:"
                f" {'rate limited (429)' if limited else exc}"
            )
        else:
            self.note = (
                f"retrying in {_seconds(delay)} (attempt {self.failures}): {exc}"
            )
        logger.info("job %s: %s", self.job_id, self.note)
        return delay

    def _end(self, error: SharkAPIError | None) -> None:
        self.error = error
        self.done = True
        self.note = ""
        if error is not None:
            logger.warning("job %s: polling ended: %s", self.job_id, error)
        return None


def _seconds(value: float) -> str:
    """A delay for people: ``"3 s"``, or ``"0.25 s"`` below ten seconds."""
    return f"{value:.0f} s" if value >= 10 else f"{value:.2g} s"


def shown_status(job: Job | None, error: Exception | None) -> str:
    """What a badge says: ``timeout`` or ``error`` when one ended polling, else
    the job's status (``unread`` before the first read)."""
    if isinstance(error, PollingTimeout):
        return "timeout"
    if error is not None:
        return "error"
    return str(job.status) if job else "unread"


class Task(Protocol):
    """Work the `Poller` runs: ``run()`` returns the next delay, or None to stop."""

    def run(self) -> float | None: ...


@dataclass(order=True)
class _Slot:
    due: float
    seq: int
    task: Task = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Poller:
    """One schedule and a small pool of worker threads for every watched job.

    Tasks are kept in one heap by due time. Idle workers sleep on a condition
    until the earliest task is due; one of them takes it, runs it and puts it
    back in the heap with the delay it returned. A task is never run twice at
    once. With ``start=False`` no thread starts, and `run_due` runs the due
    tasks in the caller's thread (with an injected ``clock``, tests drive time
    by hand).

    Example:
        >>> poller = Poller(workers=4)              # doctest: +SKIP
        >>> handle = poller.schedule(task)          # doctest: +SKIP
        >>> poller.cancel(handle); poller.stop()    # doctest: +SKIP
    """

    def __init__(
        self,
        workers: int = 4,
        *,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
        name: str = "shark-poller",
    ) -> None:
        if workers < 1:
            raise ValueError("a poller needs at least one worker")
        self.workers = workers
        self.name = name
        self._clock = clock
        self._heap: list[_Slot] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._live: set[int] = set()
        self._follows: dict[tuple[int, str, bool], WatchTask] = {}
        if start:
            self._start_threads()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else "running"
        return f"Poller({self.name!r}, {state}, tasks={len(self._live)})"

    @property
    def threads(self) -> list[threading.Thread]:
        """The worker threads this poller started, for inspection."""
        return list(self._threads)

    @property
    def pending(self) -> int:
        """How many tasks are scheduled or running."""
        return len(self._live)

    def schedule(self, task: Task, delay: float = 0.0) -> _Slot:
        """Run ``task`` after ``delay`` seconds, then as often as it asks."""
        if self._stopped.is_set():
            raise RuntimeError("this poller is stopped")
        slot = _Slot(self._clock() + delay, next(self._seq), task)
        with self._wake:
            self._live.add(id(slot))
            heapq.heappush(self._heap, slot)
            self._wake.notify()
        return slot

    def cancel(self, slot: _Slot) -> None:
        """Stop running the task of ``slot`` (a run under way finishes first)."""
        with self._wake:
            slot.cancelled = True
            self._live.discard(id(slot))

    def stop(self, timeout: float = 2.0) -> None:
        """Stop scheduling and end the threads; no new request starts after this."""
        self._stopped.set()
        with self._wake:
            self._heap.clear()
            self._live.clear()
            self._wake.notify_all()
        current = threading.current_thread()
        # One deadline for all: a worker stuck in a request must not make
        # every later join wait its own full timeout.
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        logger.debug("%s stopped", self.name)

    def follow(
        self, watch: JobWatch, listener: Callable[[JobWatch], None]
    ) -> WatchTask:
        """Step ``watch`` on this poller and call ``listener`` after each step.

        Followers of the same job through the same client share one task, so
        one job is read once per interval however many widgets show it.
        """
        key = (id(watch.client), watch.job_id, watch.fetch_image)
        with self._wake:
            task = self._follows.get(key)
            if task is None or task.slot is None or task.slot.cancelled:
                task = WatchTask(watch, on_end=lambda: self._forget(key))
                self._follows[key] = task
                fresh = True
            else:
                fresh = False
            task.add_listener(listener)
        if fresh:
            task.slot = self.schedule(task)
        return task

    def unfollow(self, task: WatchTask, listener: Callable[[JobWatch], None]) -> None:
        """Stop calling ``listener``; the task stops once nobody follows it."""
        if task.remove_listener(listener) and task.slot is not None:
            self.cancel(task.slot)
            task.end()

    def run_due(self) -> int:
        """Run every task that is due now in this thread; return how many ran."""
        ran = 0
        for slot in self._pop_due():
            self._run(slot)
            ran += 1
        return ran

    def _forget(self, key: tuple[int, str, bool]) -> None:
        with self._wake:
            self._follows.pop(key, None)

    def _start_threads(self) -> None:
        for index in range(self.workers):
            self._threads.append(
                threading.Thread(
                    target=self._work_loop, name=f"{self.name}-{index}", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def _pop_due(self) -> list[_Slot]:
        due = []
        with self._wake:
            now = self._clock()
            while self._heap and self._heap[0].due <= now:
                slot = heapq.heappop(self._heap)
                if not slot.cancelled:
                    due.append(slot)
        return due

    def _work_loop(self) -> None:
        while (slot := self._next_due()) is not None:
            self._run(slot)

    def _next_due(self) -> _Slot | None:
        """Sleep until a task is due and take it; None once the poller stops."""
        with self._wake:
            while not self._stopped.is_set():
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                now = self._clock()
                if self._heap and self._heap[0].due <= now:
                    slot = heapq.heappop(self._heap)
                    if self._heap and self._heap[0].due <= now:
                        self._wake.notify()
                    return slot
                self._wake.wait(self._heap[0].due - now if self._heap else None)
        return None

    def _run(self, slot: _Slot) -> None:
        try:
            delay = slot.task.run()
        except Exception:
            logger.exception("a polling task raised; it will not run again")
            delay = None
        with self._wake:
            if delay is None or slot.cancelled or self._stopped.is_set():
                self._live.discard(id(slot))
                return
            slot.due = self._clock() + delay
            slot.seq = next(self._seq)
            heapq.heappush(self._heap, slot)
            # Idle workers sleep until the earliest due time: they need waking
            # only if this task is now the earliest, not after every poll.
            if self._heap[0] is slot:
                self._wake.notify()


class WatchTask:
    """A `Task` that steps a `JobWatch` and tells weakly held listeners.

    Listeners are held through weak references, so a widget nobody holds any
    more is collected, and once no listener is left the task stops.
    """

    def __init__(
        self, watch: JobWatch, on_end: Callable[[], None] | None = None
    ) -> None:
        self.watch = watch
        self.slot: _Slot | None = None
        self._on_end = on_end
        self._listeners: list[weakref.ReferenceType[Callable[[JobWatch], None]]] = []
        self._lock = threading.Lock()

    def end(self) -> None:
        """Mark the task over (its poller forgets it)."""
        if self._on_end is not None:
            self._on_end()
            self._on_end = None

    def add_listener(self, listener: Callable[[JobWatch], None]) -> None:
        """Call ``listener(watch)`` after every step (held weakly)."""
        ref = (
            weakref.WeakMethod(listener)
            if hasattr(listener, "__self__")
            else weakref.ref(listener)
        )
        with self._lock:
            self._listeners.append(ref)

    def remove_listener(self, listener: Callable[[JobWatch], None]) -> bool:
        """Forget ``listener``; return True if none is left."""
        with self._lock:
            self._listeners = [
                r for r in self._listeners if r() not in (None, listener)
            ]
            return not self._listeners

    def run(self) -> float | None:
        """Step the watch once, tell the listeners, return the next delay."""
        try:
            delay = self.watch.step()
        except Exception as exc:
            logger.exception("job %s: polling raised", self.watch.job_id)
            self.watch.fail(exc)
            delay = None
        alive = self._notify()
        if delay is None or not alive:
            self.end()
            return None
        return delay

    def _notify(self) -> bool:
        with self._lock:
            pairs = [(ref, ref()) for ref in self._listeners]
            self._listeners = [ref for ref, listener in pairs if listener is not None]
        listeners = [listener for _, listener in pairs if listener is not None]
        for listener in listeners:
            try:
                listener(self.watch)
            except Exception:
                logger.exception("job %s: a listener raised", self.watch.job_id)
        return bool(listeners)


_default: Poller | None = None
_default_lock = threading.Lock()


def default_poller() -> Poller:
    """The process-wide poller shared by every widget (started on first use)."""
    global _default
    with _default_lock:
        if _default is None or _default._stopped.is_set():
            _default = Poller()
            atexit.register(_default.stop, 0.5)
        return _default
