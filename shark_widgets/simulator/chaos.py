"""The chaos report: every fault the simulator can inject, run against `JobWidget`.

Each scenario makes a job on a simulator started here, injects its faults,
and follows the job with a real `JobWidget` over real HTTP. What the widget
ends up showing is checked against what it should show, along with the rules
that hold whatever the faults: a job is read at most once per interval, a
status never goes backwards, the image request carries no token, nothing
raises unhandled, and the account's token (a canary) appears in no widget
state, HTML, repr, message, note, log line or traceback.

Run it with ``python -m shark_widgets.simulator.chaos`` (``--quick`` for
shorter intervals). `run_chaos` returns the same figures as a `Report`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from ipywidgets import Widget

from ..client import SharkClient
from ..models import shorten
from ..polling import Poller
from ..widgets.job import JobWidget
from .faults import Fault
from .server import SharkSimulator

__all__ = ["Report", "ScenarioResult", "main", "run_chaos"]

logger = logging.getLogger(__name__)

_ACTIVE_ORDER = {"unread": 0, "queued": 1, "processing": 2}
_TERMINAL = frozenset({"complete", "failed", "moderated"})
_LIMIT = 20.0


class InjectedCrash(RuntimeError):
    """The exception the polling-code scenario raises inside the client."""


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario injected, what the widget showed, and its figures.

    ``recovered_in`` is the seconds from the first fault to the first good
    answer after the last one (None when the right ending is an error);
    ``ended_in`` the seconds from the first fault to the end of polling.
    """

    name: str
    injected: str
    outcome: str
    survived: bool
    requests: int
    recovered_in: float | None
    ended_in: float | None
    unhandled: int
    leaked: int
    problems: tuple[str, ...] = ()

    @property
    def recovery(self) -> str:
        """The time to recover as the table shows it."""
        if self.recovered_in is not None:
            return f"{self.recovered_in:.2f} s"
        if self.ended_in is not None:
            return f"no recovery: ended in {self.ended_in:.2f} s"
        return "-"


@dataclass(frozen=True)
class Report:
    """Every scenario's result, and the totals the report ends with."""

    results: tuple[ScenarioResult, ...]
    elapsed: float

    @property
    def scenarios(self) -> int:
        """How many scenarios ran."""
        return len(self.results)

    @property
    def survived(self) -> int:
        """How many ended as they should, with every rule kept."""
        return sum(result.survived for result in self.results)

    @property
    def unhandled(self) -> int:
        """Exceptions that escaped: must be 0."""
        return sum(result.unhandled for result in self.results)

    @property
    def leaked(self) -> int:
        """Artifacts in which the token appeared: must be 0."""
        return sum(result.leaked for result in self.results)

    @property
    def ok(self) -> bool:
        """True when every scenario survived with nothing unhandled or leaked."""
        return (
            self.survived == self.scenarios and self.unhandled == 0 and not self.leaked
        )

    def table(self) -> str:
        """One Markdown row per scenario."""
        head = ("scenario", "injected", "outcome", "requests", "time to recover")
        rows = [
            (
                ("" if r.survived else "FAILED: ") + r.name,
                r.injected,
                r.outcome,
                str(r.requests),
                r.recovery,
            )
            for r in self.results
        ]
        widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            padded = (
                cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
            )
            return "| " + " | ".join(padded) + " |"

        rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
        return "\n".join([line(head), rule, *map(line, rows)])

    def totals(self) -> str:
        """The closing line: scenarios, survivors, unhandled and leaked."""
        return (
            f"scenarios run: {self.scenarios}, survived: {self.survived},"
            f" unhandled exceptions: {self.unhandled}, tokens leaked: {self.leaked}"
            f" ({self.elapsed:.1f} s)"
        )

    def problems(self) -> list[str]:
        """What went wrong, scenario by scenario (empty when all is well)."""
        return [f"{r.name}: {p}" for r in self.results for p in r.problems]


@dataclass
class _Run:
    """The widgets following one job, and what they showed."""

    job_id: str
    widgets: list[JobWidget]
    statuses: list[list[str]]
    notes: list[str]
    started: float
    ended: float | None = None


@dataclass
class _Check:
    """The verdict on one scenario, filled in by the scenario and the lab."""

    injected: str
    run: _Run
    sim: SharkSimulator
    expect: str
    says: str
    recovers: bool = True
    problems: list[str] = field(default_factory=list)
    outcome: str = ""
    requests: int | None = None
    first_fault: float | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


class _Capture(logging.Handler):
    """Keeps every record, for the unhandled-exception count and the token search."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Lab:
    """The simulator, the canary account, a poller, and the run of scenarios."""

    def __init__(self, sim: SharkSimulator, interval: float) -> None:
        self.sim = sim
        self.interval = interval
        self.token = sim.new_account("100.00", token=_canary())
        self.client = sim.client(self.token)
        self.poller = Poller(workers=4, name="chaos-poller")
        self.capture = _Capture()
        self.thread_errors: list[threading.ExceptHookArgs] = []

    @contextmanager
    def watching(self) -> Iterator[_Lab]:
        """Capture logs and thread crashes for the duration of the run."""
        loggers = [logging.getLogger(name) for name in ("shark_widgets", "urllib3")]
        levels = [log.level for log in loggers]
        hook = threading.excepthook
        threading.excepthook = self.thread_errors.append
        for log in loggers:
            log.addHandler(self.capture)
            log.setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            threading.excepthook = hook
            for log, level in zip(loggers, levels, strict=True):
                log.removeHandler(self.capture)
                log.setLevel(level)
            self.poller.stop()
            self.client.close()

    def job(self, prompt: str, *, queued: float = 0.0, steps: float = 6) -> str:
        """A job on the canary account, processing for ``steps`` intervals."""
        processing = steps * self.interval if math.isfinite(steps) else math.inf
        return self.sim.create_job(
            prompt, token=self.token, queued=queued, processing=processing
        )

    def follow(
        self,
        job_id: str,
        *,
        client: SharkClient | None = None,
        widgets: int = 1,
        **kwargs: Any,
    ) -> _Run:
        """Start ``widgets`` widgets on ``job_id``, recording what they show."""
        run = _Run(job_id, [], [], [], time.monotonic())
        for _ in range(widgets):
            widget = JobWidget(
                job_id,
                client or self.client,
                self.interval,
                poller=self.poller,
                show_elapsed=False,
                **kwargs,
            )
            shown = [widget.status]
            widget.observe(
                lambda change, shown=shown: shown.append(change["new"]), "status"
            )
            widget.observe(
                lambda change: change["new"] and run.notes.append(change["new"]),
                "note",
            )
            run.widgets.append(widget)
            run.statuses.append(shown)
        return run

    def finish(self, run: _Run) -> None:
        """Wait for every widget of ``run`` to end (bounded)."""
        for widget in run.widgets:
            widget._ended.wait(max(0.0, run.started + _LIMIT - time.monotonic()))
        if all(widget.done for widget in run.widgets):
            run.ended = time.monotonic()

    def check(
        self,
        injected: str,
        run: _Run,
        expect: str,
        says: str,
        *,
        sim: SharkSimulator | None = None,
        recovers: bool = True,
    ) -> _Check:
        """Wait for ``run`` and judge it: ``expect`` status, ``says`` in its text."""
        self.finish(run)
        return _Check(injected, run, sim or self.sim, expect, says, recovers)

    def result(self, name: str, scenario: Callable[[_Lab], _Check]) -> ScenarioResult:
        """Run one scenario and turn its check into figures."""
        seen = len(self.capture.records)
        hooked = len(self.thread_errors)
        try:
            check = scenario(self)
        except Exception as exc:
            logger.exception("chaos scenario %r raised", name)
            return ScenarioResult(
                name=name,
                injected="-",
                outcome=f"raised {type(exc).__name__}: {exc}",
                survived=False,
                requests=0,
                recovered_in=None,
                ended_in=None,
                unhandled=1,
                leaked=0,
                problems=(f"the scenario raised {exc!r}",),
            )
        records = self.capture.records[seen:]
        leaked = self._leaks(check, records)
        unhandled = (
            len(self.thread_errors)
            - hooked
            + sum(
                1
                for record in records
                if record.levelno >= logging.ERROR
                and record.exc_info
                and not isinstance(record.exc_info[1], InjectedCrash)
            )
        )
        problems = [*check.problems, *self._judge(check)]
        if leaked:
            problems.append(f"the token appeared in {leaked} artifact(s)")
        if unhandled:
            problems.append(f"{unhandled} unhandled exception(s)")
        for widget in check.run.widgets:
            widget.close()
        first, recovered = self._recovery(check)
        ended = None
        if check.run.ended is not None and first is not None:
            ended = max(0.0, check.run.ended - first)
        result = ScenarioResult(
            name=name,
            injected=check.injected,
            outcome=check.outcome or _outcome(check.run),
            survived=not problems,
            requests=self._requests(check),
            recovered_in=recovered,
            ended_in=None if recovered is not None else ended,
            unhandled=unhandled,
            leaked=leaked,
            problems=tuple(problems),
        )
        for step in check.cleanup:
            step()
        return result

    def _judge(self, check: _Check) -> list[str]:
        run, problems = check.run, []
        if run.ended is None:
            return [f"polling did not end within {_LIMIT:.0f} s"]
        for widget, statuses in zip(run.widgets, run.statuses, strict=True):
            if widget.status != check.expect:
                problems.append(f"ended {widget.status!r}, not {check.expect!r}")
            text = " ".join([widget.message, *run.notes])
            if check.says not in text:
                problems.append(f"never said {check.says!r}: {shorten(text, 120)!r}")
            if not _never_backwards(statuses):
                problems.append(f"a status went backwards: {statuses}")
            if check.expect == "complete" and widget.image is None:
                problems.append("complete without the image")
        times = [r.time for r in _api_records(check.sim, run.job_id)]
        if any(b - a < self.interval for a, b in itertools.pairwise(times)):
            problems.append("the job was read more than once in an interval")
        if any(r.authorization for r in _image_records(check.sim, run.job_id)):
            problems.append("an image request carried an Authorization header")
        return problems

    def _leaks(self, check: _Check, records: list[logging.LogRecord]) -> int:
        texts = list(check.run.notes)
        for widget in check.run.widgets:
            parts = [widget, *widget.children]
            parts += [part.layout for part in parts]
            state = Widget.get_manager_state(widgets=parts)
            texts += [
                json.dumps(state, default=repr),
                repr(widget),
                repr(widget._client),
                str(widget.job),
                widget.message,
                widget._header.value,
                widget._body.value,
                json.dumps(widget._repr_mimebundle_(), default=repr),
            ]
            if widget.error is not None:
                texts += [
                    repr(widget.error),
                    "".join(traceback.format_exception(widget.error)),
                ]
        texts += [self.capture.format(record) for record in records]
        texts += [
            str(r.authorization) for r in _image_records(check.sim, check.run.job_id)
        ]
        return sum(self.token in text for text in texts)

    def _recovery(self, check: _Check) -> tuple[float | None, float | None]:
        records = sorted(
            [
                *_api_records(check.sim, check.run.job_id),
                *_image_records(check.sim, check.run.job_id),
            ],
            key=lambda record: record.time,
        )
        faulted = [r for r in records if r.fault]
        first = check.first_fault
        if first is None:
            first = faulted[0].time if faulted else check.run.started
        if not check.recovers:
            return first, None
        last = faulted[-1].time if faulted else first
        for record in records:
            if record.time > last and not record.fault and record.status_code == 200:
                return first, record.time - first
        return first, None

    def _requests(self, check: _Check) -> int:
        if check.requests is not None:
            return check.requests
        return len(_api_records(check.sim, check.run.job_id)) + len(
            _image_records(check.sim, check.run.job_id)
        )


def _canary() -> str:
    return f"sk_test_CANARY{secrets.token_hex(12)}"


def _api_records(sim: SharkSimulator, job_id: str) -> list[Any]:
    return [r for r in sim.requests if r.job_id == job_id and r.method == "GET"]


def _image_records(sim: SharkSimulator, job_id: str) -> list[Any]:
    return [r for r in sim.image_requests if r.path == f"/out/{job_id}.jpg"]


def _never_backwards(statuses: list[str]) -> bool:
    peak, ended = 0, None
    for status in statuses:
        if ended is not None and status not in (ended, "error"):
            return False
        if status in _ACTIVE_ORDER:
            if _ACTIVE_ORDER[status] < peak:
                return False
            peak = _ACTIVE_ORDER[status]
        elif status in _TERMINAL:
            ended = status
    return True


def _outcome(run: _Run) -> str:
    widget = run.widgets[0]
    if widget.message:
        return f"{widget.status}: {shorten(widget.message, 70)}"
    if run.notes:
        return f"{widget.status}; said {shorten(run.notes[0], 60)!r}"
    return widget.status


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The scenarios, one per row of faults


def _transient(
    name: str, fault: Fault, times: int, says: str, injected: str
) -> tuple[str, Callable[[_Lab], _Check]]:
    """A fault on ``times`` reads after the first, then the real service."""

    def scenario(lab: _Lab) -> _Check:
        job_id = lab.job(name)
        lab.sim.inject(fault, job_id=job_id, after=1, times=times)
        label = f"{injected} on reads 2-{times + 1}"
        return lab.check(label, lab.follow(job_id), "complete", says)

    return name, scenario


def _retry_after_seconds(lab: _Lab) -> _Check:
    job_id = lab.job("429 with Retry-After seconds")
    lab.sim.inject(Fault.status(429, {"Retry-After": "1"}), job_id=job_id, after=1)
    check = lab.check(
        "429, Retry-After: 1", lab.follow(job_id), "complete", "rate limited"
    )
    _honoured(check, lambda limited: limited.time + 1.0)
    return check


def _retry_after_date(lab: _Lab) -> _Check:
    job_id = lab.job("429 with Retry-After date")
    when = time.time() + 2
    header = formatdate(when, usegmt=True)
    lab.sim.inject(Fault.status(429, {"Retry-After": header}), job_id=job_id, after=1)
    check = lab.check(
        "429, Retry-After: <HTTP date, +2 s>",
        lab.follow(job_id),
        "complete",
        "rate limited",
    )
    wall = time.time() - time.monotonic()
    _honoured(check, lambda limited: math.floor(when) - wall - 0.01)
    return check


def _honoured(check: _Check, not_before: Callable[[Any], float]) -> None:
    records = _api_records(check.sim, check.run.job_id)
    for limited, following in itertools.pairwise(records):
        if limited.status_code == 429 and following.time < not_before(limited):
            check.problems.append("read again sooner than Retry-After asked")


def _refused(lab: _Lab) -> _Check:
    port = _free_port()
    late = SharkSimulator(time_scale=0.05, port=port)
    token = late.new_account("1.00", token=lab.token)
    job_id = late.create_job("refused, then served", token=token, processing=0.1)
    client = SharkClient(
        token=token, base_url=f"http://127.0.0.1:{port}", timeout=(0.5, 0.5)
    )
    try:
        run = lab.follow(job_id, client=client)
        deadline = time.monotonic() + _LIMIT
        while len(run.notes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        late.start()
        check = lab.check(
            "connection refused (nothing listening), until a server starts",
            run,
            "complete",
            "could not connect",
            sim=late,
        )
    except BaseException:
        late.stop()
        client.close()
        raise
    check.first_fault = run.started
    refused = sum("could not connect" in note for note in run.notes)
    check.requests = refused + len(_api_records(late, job_id))
    check.requests += len(_image_records(late, job_id))
    check.cleanup += [late.stop, client.close]
    return check


def _hang(lab: _Lab) -> _Check:
    job_id = lab.job("a server that never answers")
    lab.sim.inject(Fault.hang(seconds=2.0), job_id=job_id, after=1)
    impatient = lab.sim.client(lab.token)
    impatient.timeout = (0.5, 0.5)
    check = lab.check(
        "no answer on read 2 (read timeout 0.5 s)",
        lab.follow(job_id, client=impatient),
        "complete",
        "read timeout",
    )
    check.cleanup.append(impatient.close)
    return check


def _persistent_bad_json(lab: _Lab) -> _Check:
    job_id = lab.job("malformed for good", steps=math.inf)
    lab.sim.inject(Fault.malformed_json(), job_id=job_id, after=1, times=None)
    return lab.check(
        "malformed JSON on every read after the first",
        lab.follow(job_id),
        "error",
        "broke its contract 5 times in a row",
        recovers=False,
    )


def _paused(lab: _Lab) -> _Check:
    job_id = lab.job("a paused job", queued=4 * lab.interval)
    lab.sim.inject(Fault.override(status="paused"), job_id=job_id, after=1, times=2)
    check = lab.check(
        "status 'paused' on reads 2-3", lab.follow(job_id), "complete", ""
    )
    if "paused" not in check.run.statuses[0]:
        check.problems.append("'paused' was never shown")
    check.outcome = "complete; showed " + " > ".join(
        status for status, _ in itertools.groupby(check.run.statuses[0])
    )
    return check


def _stale(lab: _Lab) -> _Check:
    job_id = lab.job("a lagging replica")
    lab.sim.inject(Fault.override(status="queued"), job_id=job_id, after=2, times=2)
    check = lab.check(
        "a stale 'queued' on reads 3-4", lab.follow(job_id), "complete", ""
    )
    check.outcome = "complete; showed " + " > ".join(
        status for status, _ in itertools.groupby(check.run.statuses[0])
    )
    return check


def _forever(lab: _Lab) -> _Check:
    job_id = lab.job("processing forever", steps=math.inf)
    timeout = 8 * lab.interval
    return lab.check(
        f"a job processing forever; timeout={timeout:.2f}",
        lab.follow(job_id, timeout=timeout),
        "timeout",
        "timed out after",
        recovers=False,
    )


def _no_image_url(lab: _Lab) -> _Check:
    job_id = lab.job("complete without a picture", steps=0)
    lab.sim.inject(Fault.override(image_url=None), job_id=job_id, times=None)
    return lab.check(
        "complete with image_url null, every read",
        lab.follow(job_id),
        "error",
        "complete but has no image_url",
        recovers=False,
    )


def _permanent(code: int, says: str) -> Callable[[_Lab], _Check]:
    def scenario(lab: _Lab) -> _Check:
        job_id = lab.job(f"a {code} mid-poll", steps=math.inf)
        lab.sim.inject(Fault.status(code), job_id=job_id, after=2, times=None)
        check = lab.check(
            f"{code} from read 3 on",
            lab.follow(job_id),
            "error",
            says,
            recovers=False,
        )
        time.sleep(3 * lab.interval)
        reads = [r.status_code for r in _api_records(lab.sim, job_id)]
        if reads != [200, 200, code]:
            check.problems.append(f"reads after the {code}: {reads}")
        return check

    return scenario


def _expired(times: int | None) -> Callable[[_Lab], _Check]:
    def scenario(lab: _Lab) -> _Check:
        job_id = lab.job("an expiring link", steps=2)
        lab.sim.inject(Fault.status(403), job_id=job_id, target="image", times=times)
        if times is None:
            return lab.check(
                "image host 403 on every image request",
                lab.follow(job_id),
                "error",
                "image link has expired",
                recovers=False,
            )
        return lab.check(
            "image host 403 on the first image request",
            lab.follow(job_id),
            "complete",
            "image link expired",
        )

    return scenario


def _crash(lab: _Lab) -> _Check:
    job_id = lab.job("the polling code trips", steps=math.inf)
    broken = lab.sim.client(lab.token)

    def get_job(job_id: str) -> Any:
        raise InjectedCrash("injected: the client raised inside the poller")

    broken.get_job = get_job  # type: ignore[method-assign]
    check = lab.check(
        "a RuntimeError raised inside client.get_job",
        lab.follow(job_id, client=broken),
        "error",
        "internal error: InjectedCrash",
        recovers=False,
    )
    traced = [
        r
        for r in lab.capture.records
        if r.exc_info and isinstance(r.exc_info[1], InjectedCrash)
    ]
    if not traced:
        check.problems.append("the exception was not logged with its traceback")
    if not all(thread.is_alive() for thread in lab.poller.threads):
        check.problems.append("a poller thread died")
    after = lab.follow(lab.job("the job after the crash", steps=1))
    lab.finish(after)
    healthy = after.widgets[0].status == "complete"
    if not healthy:
        check.problems.append("the poller did not serve the next job")
    for widget in after.widgets:
        widget.close()
    check.outcome = (
        f"{check.run.widgets[0].status}: internal error shown, traceback logged;"
        f" next job {after.widgets[0].status}"
    )
    return check


def _redirect(lab: _Lab) -> _Check:
    elsewhere = lab.job("an image on another host", steps=0)
    job_id = lab.job("redirected elsewhere")
    port = lab.sim.image_base_url.rsplit(":", 1)[1]
    target = f"http://localhost:{port}/out/{elsewhere}.jpg"
    lab.sim.inject(Fault.status(307, {"Location": target}), job_id=job_id, after=1)
    check = lab.check(
        "307 to another host on read 2",
        lab.follow(job_id),
        "complete",
        "image/jpeg where JSON was expected",
    )
    followed = _image_records(lab.sim, elsewhere)
    if not followed:
        check.problems.append("the redirect was not followed")
    if any(record.authorization for record in followed):
        check.problems.append("the token followed the redirect to another host")
    check.outcome = (
        f"complete; the other host got {len(followed)} request(s),"
        f" {sum(bool(r.authorization) for r in followed)} with a token"
    )
    check.requests = len(followed) + len(_api_records(lab.sim, job_id))
    check.requests += len(_image_records(lab.sim, job_id))
    return check


STORM = (
    Fault.status(503),
    Fault.html_200(),
    Fault.reset(),
    Fault.truncated_json(),
    Fault.status(429, {"Retry-After": "0"}),
    Fault.override(status="queued"),
    Fault.status(502),
    Fault.missing_fields(),
)


def inject_storm(sim: SharkSimulator, job_id: str) -> None:
    """Give each fault of `STORM` to every other read of ``job_id``."""
    for index, fault in enumerate(STORM):
        sim.inject(fault, job_id=job_id, after=1 + 2 * index)


def _storm(lab: _Lab) -> _Check:
    job_id = lab.job("a storm", queued=4 * lab.interval, steps=12)
    inject_storm(lab.sim, job_id)
    check = lab.check(
        "8 faults on alternate reads; 5 widgets on the job",
        lab.follow(job_id, widgets=5),
        "complete",
        "retrying",
    )
    check.outcome = "complete on all 5 widgets, one stream of reads"
    return check


SCENARIOS: list[tuple[str, Callable[[_Lab], _Check]]] = [
    ("429 Retry-After seconds", _retry_after_seconds),
    ("429 Retry-After HTTP date", _retry_after_date),
    _transient("500 HTML page", Fault.status(500), 3, "500", "500, HTML body"),
    _transient("502 HTML page", Fault.status(502), 3, "502", "502, HTML body"),
    _transient("503 HTML page", Fault.status(503), 3, "503", "503, HTML body"),
    _transient(
        "200 text/html",
        Fault.html_200(),
        2,
        "where JSON was expected",
        "200 with a captive-portal page",
    ),
    ("connection refused", _refused),
    _transient("connection reset", Fault.reset(), 2, "dropped", "TCP reset"),
    ("server never answers", _hang),
    _transient(
        "truncated JSON",
        Fault.truncated_json(),
        2,
        "malformed JSON",
        "JSON cut in half",
    ),
    _transient(
        "malformed JSON",
        Fault.malformed_json(),
        2,
        "malformed JSON",
        "a body that is not JSON",
    ),
    _transient(
        "body missing fields",
        Fault.missing_fields("status", "job_id"),
        2,
        "no 'job_id'",
        "no status and job_id",
    ),
    ("malformed JSON, persistent", _persistent_bad_json),
    ("unknown status 'paused'", _paused),
    ("stale status", _stale),
    ("processing forever", _forever),
    ("complete, image_url null", _no_image_url),
    ("401 mid-poll", _permanent(401, "refused the token (401)")),
    ("404 mid-poll", _permanent(404, "not found on this account (404)")),
    ("image link expired once", _expired(1)),
    ("image link expired for good", _expired(None)),
    ("exception in polling code", _crash),
    ("redirect to another host", _redirect),
    ("fault storm", _storm),
]
"""Every scenario of the report: a name and the function that runs it."""


def run_chaos(*, quick: bool = False) -> Report:
    """Run every scenario against a simulator started here; return the figures.

    ``quick`` shortens the polling interval (0.02 s instead of 0.05 s).
    """
    interval = 0.02 if quick else 0.05
    started = time.monotonic()
    with SharkSimulator(time_scale=0.05) as sim:
        lab = _Lab(sim, interval)
        with lab.watching():
            results = [lab.result(name, scenario) for name, scenario in SCENARIOS]
    return Report(tuple(results), time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    """Print the chaos report; exit status 0 only if every scenario survived."""
    parser = argparse.ArgumentParser(
        prog="python -m shark_widgets.simulator.chaos",
        description="Inject every fault into a local SharkAPI and watch JobWidget.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter polling intervals"
    )
    args = parser.parse_args(argv)
    report = run_chaos(quick=args.quick)
    sys.stdout.write(f"{report.table()}\n\n{report.totals()}\n")
    sys.stderr.writelines(f"  {problem}\n" for problem in report.problems())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
