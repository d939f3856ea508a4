"""Every fault the simulator can inject, against `JobWidget` over real HTTP.

Each test checks the outcome on the widget (status, note, message), what
reached the service (from the simulator's request log), and the two rules
that hold whatever the faults: a job is read at most once per interval, and
a status never goes backwards on the badge. Timing rules of the backoff are
also checked on a fake clock, without HTTP.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import math
import socket
import threading
import time

import pytest
import requests

from shark_widgets import JobWidget, ServiceUnavailableError, SharkClient
from shark_widgets.client import _Answer, _unavailable_or_rejected
from shark_widgets.errors import AuthenticationError, ContractError, PollingCrashed
from shark_widgets.models import Job
from shark_widgets.polling import BACKOFF_CAP, MAX_BAD_ANSWERS, JobWatch, Poller
from shark_widgets.simulator import Fault, SharkSimulator, chaos
from shark_widgets.simulator.chaos import SCENARIOS, Report, ScenarioResult, run_chaos

from .conftest import INTERVAL

# Faults that persist end after several backed-off reads: a shorter interval
# keeps those tests short.
FAST = 0.02

ACTIVE_ORDER = {"unread": 0, "queued": 1, "processing": 2}
TERMINAL = {"complete", "failed", "moderated"}


class Recorder:
    """A widget on a job, and every status, note and badge it showed."""

    def __init__(self, sim, client, poller, job_id, **kwargs):
        self.statuses: list[str] = []
        self.notes: list[str] = []
        self.badges: list[str] = []
        kwargs.setdefault("interval", INTERVAL)
        self.widget = JobWidget(
            job_id, client, poller=poller, show_elapsed=False, **kwargs
        )
        self.statuses.append(self.widget.status)
        self.widget.observe(self._status, "status")
        self.widget.observe(self._note, "note")
        self.widget._header.observe(self._badge, "value")
        self.sim = sim
        self.job_id = job_id

    def _status(self, change):
        self.statuses.append(change["new"])

    def _note(self, change):
        if change["new"]:
            self.notes.append(change["new"])

    def _badge(self, change):
        self.badges.append(change["new"])

    def wait(self, timeout=10.0):
        """Wait for the end of polling, whatever it is, then close the widget."""
        try:
            assert self.widget._ended.wait(timeout), "polling did not end in time"
        finally:
            self.widget.close()
        return self.widget

    @property
    def polls(self):
        return [
            r
            for r in self.sim.requests
            if r.job_id == self.job_id and r.method == "GET"
        ]

    def check_invariants(self, interval=INTERVAL):
        """At most one read per interval, and no status going backwards."""
        times = [record.time for record in self.polls]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap >= interval for gap in gaps), gaps
        assert_never_backwards(self.statuses)


def assert_never_backwards(statuses):
    peak = 0
    ended = None
    for status in statuses:
        if ended is not None:
            assert status in (ended, "error"), statuses
        if status in ACTIVE_ORDER:
            assert ACTIVE_ORDER[status] >= peak, statuses
            peak = ACTIVE_ORDER[status]
        elif status in TERMINAL:
            ended = status


def wait_until(predicate, deadline=10.0):
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def follow(sim, client, poller):
    made = []

    def make(job_id, client=client, **kwargs):
        recorder = Recorder(sim, client, poller, job_id, **kwargs)
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        recorder.widget.close()


# 429 and Retry-After


def test_429_with_retry_after_seconds_holds_the_next_read_back(sim, follow):
    job_id = sim.create_job("a rate-limited shark", queued=0.0, processing=0.3)
    sim.inject(Fault.status(429, {"Retry-After": "1"}), job_id=job_id, after=1)
    watched = follow(job_id)

    wait_until(lambda: "rate limited" in watched.widget.note)
    assert "waiting 1 s as the service asked" in watched.widget._header.value
    assert "rate limited (429)" in watched.widget._body.value
    widget = watched.wait()

    assert widget.status == "complete" and widget.note == ""
    polls = watched.polls
    limited = next(i for i, r in enumerate(polls) if r.status_code == 429)
    assert polls[limited + 1].time - polls[limited].time >= 1.0
    watched.check_invariants()


def test_429_with_an_http_date_waits_until_that_date(sim, follow):
    job_id = sim.create_job("a shark told to come back", queued=0.0, processing=0.3)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    sim.inject(Fault.status(429, {"Retry-After": when}), job_id=job_id, after=1)
    watched = follow(job_id)

    wait_until(lambda: "rate limited" in watched.widget.note)
    widget = watched.wait()

    assert widget.status == "complete"
    polls = watched.polls
    limited = next(i for i, r in enumerate(polls) if r.status_code == 429)
    wall = time.time() - time.monotonic()
    not_before = email.utils.parsedate_to_datetime(when).timestamp()
    assert polls[limited + 1].time + wall >= not_before - 0.01
    watched.check_invariants()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class ScriptedClient:
    """Answers `get_job` from a script: a status string, a Job or an exception."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def get_job(self, job_id):
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, str):
            return job(job_id, answer)
        return answer

    def fetch_image(self, url):
        raise AssertionError("no image is fetched in these tests")


def job(job_id, status, **fields):
    body = {"job_id": job_id, "status": status, **fields}
    if status == "complete":
        body.setdefault("image_url", "https://cdn.example/x.jpg")
    return Job.from_dict(body)


def http_answer(code, headers):
    response = requests.Response()
    response.status_code = code
    response.reason = "Too Many Requests" if code == 429 else "Service Unavailable"
    response.headers.update(headers)
    response._content = b"<html>slow down</html>"
    return _unavailable_or_rejected(_Answer.of(response), "service", job_id="job_1")


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_3_s_is_honoured_on_a_fake_clock(form):
    if form == "seconds":
        header = "3"
    else:
        header = email.utils.formatdate(time.time() + 3, usegmt=True)
    limited = http_answer(429, {"Retry-After": header})
    asked = limited.retry_after
    assert isinstance(limited, ServiceUnavailableError)
    assert 2.0 < asked <= 3.0
    clock = FakeClock()
    client = ScriptedClient("queued", limited, "processing")
    watch = JobWatch(client, "job_1", interval=0.5, clock=clock, rng=lambda: 0.0)
    poller = Poller(start=False, clock=clock)
    seen = []

    def listener(watch):
        seen.append(watch.note)

    poller.follow(watch, listener)

    assert poller.run_due() == 1 and client.calls == 1
    clock.advance(0.5)
    assert poller.run_due() == 1 and client.calls == 2
    assert "rate limited" in watch.note and "as the service asked" in watch.note
    clock.advance(asked - 0.01)
    assert poller.run_due() == 0 and client.calls == 2
    clock.advance(0.011)
    assert poller.run_due() == 1 and client.calls == 3
    assert watch.job.status == "processing" and watch.note == ""


def test_backoff_is_exponential_capped_jittered_and_never_below_the_interval():
    interval = 2.0
    failing = ServiceUnavailableError("the service answered 503")
    for jitter, low in ((0.0, True), (1.0, False)):
        client = ScriptedClient(failing)
        watch = JobWatch(client, "job_1", interval=interval, rng=lambda j=jitter: j)
        delays = [watch.step() for _ in range(12)]

        ceilings = [min(BACKOFF_CAP, interval * 2.0**n) for n in range(1, 13)]
        expected = [max(interval, c * 0.5) if low else c for c in ceilings]
        assert delays == pytest.approx(expected)
        assert min(delays) >= interval and max(delays) <= BACKOFF_CAP
        assert "attempt 12" in watch.note and not watch.done


def test_after_a_recovery_reads_go_back_to_the_interval():
    client = ScriptedClient(
        ServiceUnavailableError("503"), ServiceUnavailableError("503"), "processing"
    )
    watch = JobWatch(client, "job_1", interval=1.0, rng=lambda: 0.5)

    assert [watch.step(), watch.step()] == pytest.approx([1.5, 3.0])
    assert watch.failures == 2 and "attempt 2" in watch.note
    assert watch.step() == pytest.approx(1.0 * 1.025)
    assert watch.failures == 0 and watch.note == ""


# 5xx, HTML where JSON was promised


@pytest.mark.parametrize("code", [500, 502, 503])
def test_5xx_html_pages_are_retried_with_backoff_then_the_real_state(sim, follow, code):
    job_id = sim.create_job(f"a shark behind a {code}", queued=0.0, processing=0.3)
    sim.inject(Fault.status(code), job_id=job_id, after=1, times=3)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete" and widget.image is not None
    assert [n for n in watched.notes if "retrying" in n and str(code) in n]
    assert "attempt 3" in watched.notes[-1]
    assert any("shark-waiting" in b and "retrying in" in b for b in watched.badges)
    assert "shark-waiting" not in widget._header.value
    polls = watched.polls
    first = next(i for i, r in enumerate(polls) if r.fault)
    gaps = [polls[i + 1].time - polls[i].time for i in range(first, first + 3)]
    assert [r.status_code for r in polls[first : first + 4]] == [code] * 3 + [200]
    # Attempt n waits at least interval * 2**(n - 1): the backoff grows.
    assert all(gap >= INTERVAL * 2**n for n, gap in enumerate(gaps)), gaps
    watched.check_invariants()


def test_a_200_with_an_html_page_is_retried_then_the_real_state(sim, follow):
    job_id = sim.create_job("a shark behind a portal", queued=0.0, processing=0.3)
    sim.inject(Fault.html_200(), job_id=job_id, after=1, times=2)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete"
    assert any("text/html where JSON was expected" in n for n in watched.notes)
    assert sum(r.fault == "html_200" for r in watched.polls) == 2
    watched.check_invariants()


# No answer: refused, reset, hanging


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_is_retried_until_the_service_answers(poller):
    port = free_port()
    late = SharkSimulator(time_scale=0.05, port=port)
    job_id = late.create_job("a shark before the server", queued=0.0, processing=0.1)
    client = SharkClient(
        token=late.token, base_url=f"http://127.0.0.1:{port}", timeout=(0.5, 0.5)
    )
    watched = Recorder(late, client, poller, job_id)
    try:
        wait_until(lambda: len(watched.notes) >= 2)
        assert "could not connect" in watched.widget.note
        assert watched.widget.status == "unread" and not watched.widget.done
        late.start()
        widget = watched.wait()
    finally:
        late.stop()
        client.close()

    assert widget.status == "complete" and widget.image is not None
    watched.check_invariants()


def test_a_reset_connection_is_retried(sim, follow):
    job_id = sim.create_job("a shark cut off", queued=0.0, processing=0.3)
    sim.inject(Fault.reset(), job_id=job_id, after=1, times=2)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete"
    assert any("no answer" in n and "dropped" in n for n in watched.notes)
    assert [r.status_code for r in watched.polls if r.fault] == [None, None]
    watched.check_invariants()


def test_a_server_that_never_answers_times_out_and_is_retried(sim, follow):
    job_id = sim.create_job("a shark on hold", queued=0.0, processing=0.3)
    sim.inject(Fault.hang(seconds=3.0), job_id=job_id, after=1)
    impatient = SharkClient(token=sim.token, base_url=sim.base_url, timeout=(0.5, 0.5))
    watched = follow(job_id, client=impatient)

    widget = watched.wait(timeout=5)

    assert widget.status == "complete"
    assert any("read timeout" in n for n in watched.notes)
    watched.check_invariants()
    impatient.close()


# Bodies that are not a job


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (Fault.truncated_json(), "malformed JSON"),
        (Fault.malformed_json(), "malformed JSON"),
        (Fault.missing_fields("status"), "no 'status'"),
        (Fault.missing_fields("job_id"), "no 'job_id'"),
        (Fault.override(cost="a lot"), "not a cost"),
    ],
    ids=["truncated", "malformed", "no-status", "no-job-id", "bad-cost"],
)
def test_a_bad_body_is_retried_then_the_real_state(sim, follow, fault, says):
    job_id = sim.create_job("a shark garbled", queued=0.0, processing=0.3)
    sim.inject(fault, job_id=job_id, after=1, times=2)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete" and widget.message == ""
    assert any(says in n and "retrying" in n for n in watched.notes), watched.notes
    watched.check_invariants()


def test_a_body_without_mode_and_prompt_is_a_valid_job(sim, follow):
    job_id = sim.create_job("a terse shark", queued=0.0, processing=0.1)
    sim.inject(Fault.missing_fields("mode", "prompt"), job_id=job_id, times=None)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete" and watched.notes == []
    assert widget.job.mode is None and widget.job.prompt is None


def test_a_bad_body_that_persists_ends_in_a_clear_error(sim, follow):
    job_id = sim.create_job("a shark beyond repair", queued=0.0, processing=math.inf)
    sim.inject(Fault.malformed_json(), job_id=job_id, after=1, times=None)
    watched = follow(job_id, interval=FAST)

    widget = watched.wait()
    polls = len(watched.polls)
    time.sleep(FAST * 4)

    assert widget.status == "error"
    assert "broke its contract 5 times in a row" in widget.message
    assert "malformed JSON" in widget.message
    assert 'class="shark-error"' in widget._body.value
    assert polls == 1 + MAX_BAD_ANSWERS == len(watched.polls)
    assert isinstance(widget.error, ContractError)
    watched.check_invariants(FAST)


# Statuses the contract does not list, and stale ones


def test_an_unknown_status_is_shown_as_it_is_and_polling_goes_on(sim, follow):
    job_id = sim.create_job("a paused shark", queued=0.3, processing=0.3)
    sim.inject(Fault.override(status="paused"), job_id=job_id, after=1, times=2)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete"
    shown = [s for s in watched.statuses if s != "unread"]
    assert shown[0] == "queued" and "paused" in shown and shown[-1] == "complete"
    paused = [b for b in watched.badges if 'data-status="paused"' in b]
    assert paused and all("shark-spinner" in b for b in paused)
    watched.check_invariants()


def test_a_status_never_goes_backwards_even_through_an_unknown_one():
    client = ScriptedClient(
        "queued", "processing", "paused", "queued", "processing", "queued", "complete"
    )
    watch = JobWatch(client, "job_1", interval=1.0)
    shown = []
    while watch.step() is not None:
        shown.append(str(watch.job.status))
    shown.append(str(watch.job.status))

    assert shown == [
        "queued",
        "processing",
        "paused",
        "paused",
        "processing",
        "processing",
        "complete",
    ]


def test_a_stale_queued_after_processing_is_not_shown(sim, follow):
    job_id = sim.create_job("a shark from a lagging replica", queued=0.0)
    sim.inject(Fault.override(status="queued"), job_id=job_id, after=2, times=2)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete"
    assert sum(r.fault == "override" for r in watched.polls) == 2
    watched.check_invariants()


# Deadlines


def test_a_job_processing_forever_ends_in_a_timeout(sim, follow):
    job_id = sim.create_job("a shark that never ends", queued=0.0, processing=math.inf)
    watched = follow(job_id, timeout=0.4)

    widget = watched.wait()
    polls = len(watched.polls)
    time.sleep(INTERVAL * 4)

    assert widget.status == "timeout"
    assert "timed out after" in widget.message and "still processing" in widget.message
    assert widget.job.status == "processing"
    assert 'data-status="timeout"' in widget._header.value
    assert len(watched.polls) == polls
    watched.check_invariants()


# Contract violations and permanent errors


def test_complete_without_an_image_url_is_a_contract_error(sim, follow):
    job_id = sim.create_job("a shark without a picture", queued=0.0, processing=0.0)
    sim.inject(Fault.override(image_url=None), job_id=job_id, times=None)
    watched = follow(job_id, interval=FAST)

    widget = watched.wait()

    assert widget.status == "error" and "complete" not in watched.statuses
    assert "broke its contract" in widget.message
    assert "complete but has no image_url" in widget.message
    assert widget.image is None
    assert not [r for r in sim.image_requests if job_id in r.path]
    watched.check_invariants(FAST)


@pytest.mark.parametrize(
    ("code", "says"),
    [(401, "refused the token (401)"), (404, "was not found on this account (404)")],
)
def test_401_or_404_mid_poll_stops_at_once_and_is_never_retried(
    sim, follow, code, says
):
    job_id = sim.create_job(f"a shark met by a {code}", queued=0.0, processing=math.inf)
    sim.inject(Fault.status(code), job_id=job_id, after=2, times=None)
    watched = follow(job_id)

    widget = watched.wait()
    time.sleep(INTERVAL * 4)

    assert widget.status == "error" and says in widget.message
    assert [r.status_code for r in watched.polls] == [200, 200, code]
    assert watched.notes == []
    watched.check_invariants()


# The image host


def image_requests(sim, job_id):
    return [r for r in sim.image_requests if r.path == f"/out/{job_id}.jpg"]


def test_an_expired_image_link_is_read_again_once_for_a_fresh_one(sim, follow):
    job_id = sim.create_job("a shark with a stale link", queued=0.0, processing=0.1)
    sim.inject(Fault.status(403), job_id=job_id, target="image")
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "complete" and widget.image is not None
    assert [r.status_code for r in image_requests(sim, job_id)] == [403, 200]
    expired_at = image_requests(sim, job_id)[0].time
    assert len([r for r in watched.polls if r.time > expired_at]) == 1
    assert any("image link expired" in n for n in watched.notes)
    watched.check_invariants()


def test_an_image_link_that_stays_expired_ends_in_a_clear_state(sim, follow):
    job_id = sim.create_job("a shark out of reach", queued=0.0, processing=0.1)
    sim.inject(Fault.status(403), job_id=job_id, target="image", times=None)
    watched = follow(job_id)

    widget = watched.wait()

    assert widget.status == "error" and "image link has expired" in widget.message
    assert widget.job.status == "complete" and widget.image is None
    assert [r.status_code for r in image_requests(sim, job_id)] == [403, 403]
    expired_at = image_requests(sim, job_id)[0].time
    assert len([r for r in watched.polls if r.time > expired_at]) == 1
    watched.check_invariants()


# The polling code itself


def test_an_exception_in_the_polling_code_is_logged_shown_and_survived(
    sim, follow, poller, monkeypatch, caplog
):
    job_id = sim.create_job("a shark that trips the code", processing=math.inf)
    broken = sim.client()

    def get_job(job_id):
        raise RuntimeError("boom in get_job")

    monkeypatch.setattr(broken, "get_job", get_job)
    caplog.set_level(logging.ERROR, logger="shark_widgets")
    watched = follow(job_id, client=broken)

    widget = watched.wait()

    assert widget.status == "error" and isinstance(widget.error, PollingCrashed)
    assert "internal error: RuntimeError: boom in get_job" in widget.message
    assert 'data-status="error"' in widget._header.value
    crashed = [r for r in caplog.records if r.exc_info and job_id in r.getMessage()]
    assert crashed and crashed[0].exc_info[0] is RuntimeError
    assert "Traceback (most recent call last)" in caplog.text
    assert 'raise RuntimeError("boom in get_job")' in caplog.text
    assert all(thread.is_alive() for thread in poller.threads)
    healthy = sim.create_job("the next shark", queued=0.0, processing=0.1)
    assert follow(healthy).wait().status == "complete"


def test_a_task_that_raises_is_logged_and_the_worker_serves_the_next(caplog):
    poller = Poller(workers=1, name="test-crash")
    ran = threading.Event()

    class Broken:
        def run(self):
            raise ValueError("a broken task")

    class Fine:
        def run(self):
            ran.set()

    try:
        poller.schedule(Broken())
        poller.schedule(Fine(), 0.05)
        assert ran.wait(5)
        assert all(thread.is_alive() for thread in poller.threads)
    finally:
        poller.stop()

    assert "a polling task raised" in caplog.text and "a broken task" in caplog.text


# Whatever the faults


def test_under_a_storm_of_faults_a_job_is_read_once_per_interval(sim, follow):
    job_id = sim.create_job("a shark in a storm", queued=0.2, processing=0.6)
    chaos.inject_storm(sim, job_id)
    # Five widgets on one job share one stream of reads.
    watchers = [follow(job_id) for _ in range(5)]

    widgets = [watched.wait() for watched in watchers]

    assert {widget.status for widget in widgets} == {"complete"}
    assert {r.fault for r in watchers[0].polls if r.fault} >= {
        "status_503",
        "html_200",
        "reset",
    }
    for watched in watchers:
        watched.check_invariants()


def test_a_401_ends_polling_without_any_retry_on_a_fake_clock():
    refused = AuthenticationError("the service refused the token (401)")
    client = ScriptedClient("queued", refused, "processing")
    watch = JobWatch(client, "job_1", interval=1.0)

    assert watch.step() is not None
    assert watch.step() is None
    assert watch.step() is None
    assert client.calls == 2 and watch.error is refused and watch.status == "error"


# The chaos report


def test_the_chaos_report_survives_every_fault_with_nothing_unhandled_or_leaked():
    report = run_chaos(quick=True)

    assert report.problems() == []
    assert report.scenarios == len(SCENARIOS) >= 20
    assert report.survived == report.scenarios
    assert report.unhandled == 0 and report.leaked == 0 and report.ok
    table = report.table().splitlines()
    assert len(table) == 2 + report.scenarios
    assert all(row.startswith("| ") and row.endswith(" |") for row in table[2:])
    assert report.totals().startswith(
        f"scenarios run: {report.scenarios}, survived: {report.scenarios},"
        " unhandled exceptions: 0, tokens leaked: 0"
    )
    assert {r.name for r in report.results if r.recovered_in is not None} >= {
        "429 Retry-After seconds",
        "503 HTML page",
        "connection refused",
        "server never answers",
    }
    limited = next(r for r in report.results if r.name == "429 Retry-After seconds")
    assert limited.recovered_in >= 1.0


def test_the_chaos_report_counts_what_went_wrong(monkeypatch, capsys):
    good = ScenarioResult("good", "a fault", "complete", True, 3, 0.5, None, 0, 0)
    bad = ScenarioResult(
        "bad", "a fault", "error", False, 9, None, 1.0, 1, 2, ("it broke",)
    )
    report = Report((good, bad), 1.5)

    assert (report.scenarios, report.survived) == (2, 1)
    assert (report.unhandled, report.leaked, report.ok) == (1, 2, False)
    assert report.problems() == ["bad: it broke"]
    assert "FAILED: bad" in report.table()
    assert "no recovery: ended in 1.00 s" in report.table()

    monkeypatch.setattr(chaos, "run_chaos", lambda quick: report)
    assert chaos.main(["--quick"]) == 1
    printed = capsys.readouterr()
    assert "scenarios run: 2, survived: 1, unhandled exceptions: 1" in printed.out
    assert "tokens leaked: 2" in printed.out and "bad: it broke" in printed.err
