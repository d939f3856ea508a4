"""How polling starts and ends: re-run cells, dropped widgets, stop, close,
terminal states, a stopped poller and the end of the interpreter.

ipywidgets 8 keeps every open widget in a module-level registry, and the
comm manager holds each widget's comm, until ``close()``: a widget the user
no longer holds stays alive until then, so what the poller must guarantee is
that it holds widgets only weakly. These tests check that a closed widget is
collected, and that a widget neither registry holds (as with a front-end
that holds widgets weakly) is collected too and its polling stops.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest
from ipywidgets.widgets import widget as ipywidget

from shark_widgets import JobWidget
from shark_widgets.polling import JobWatch, Poller, default_poller
from shark_widgets.simulator import Fault

from .conftest import INTERVAL


def wait_until(predicate, deadline=10.0):
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def poll_times(sim, job_id):
    return [r.time for r in sim.requests if r.job_id == job_id]


def polls_stay_at(sim, job_id, count):
    time.sleep(INTERVAL * 5)
    return sim.polls(job_id) == count


def test_re_running_a_cell_five_times_leaves_one_poll_stream(sim, client, poller):
    job_id = sim.create_job("a shark in a re-run cell", queued=0.0, processing=math.inf)
    cell = []
    for _ in range(5):
        cell.append(JobWidget(job_id, client, INTERVAL, poller=poller))

    wait_until(lambda: sim.polls(job_id) >= 10)
    times = poll_times(sim, job_id)
    replaced, last = cell[:4], cell[4]
    for widget in replaced:
        widget.close()
    shown = sim.polls(job_id)
    wait_until(lambda: sim.polls(job_id) >= shown + 3)

    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= INTERVAL for gap in gaps), gaps
    assert all(widget.done for widget in replaced) and not last.done
    assert last.status == "processing"
    # The one shared read and the live widget's elapsed-time ticker.
    assert poller.pending == 2
    last.close()
    assert poller.pending == 0
    assert polls_stay_at(sim, job_id, sim.polls(job_id))


def test_a_closed_and_dropped_widget_is_collected(sim, client, poller):
    job_id = sim.create_job("a shark let go", processing=math.inf)
    widget = JobWidget(job_id, client, INTERVAL, poller=poller)
    wait_until(lambda: sim.polls(job_id) >= 2)
    collected = weakref.ref(widget)

    widget.close()
    del widget
    gc.collect()

    assert collected() is None
    assert poller.pending == 0
    assert polls_stay_at(sim, job_id, sim.polls(job_id))


def test_a_widget_nobody_holds_is_collected_and_stops_polling(sim, client, poller):
    job_id = sim.create_job("a shark nobody holds", processing=math.inf)
    widget = JobWidget(job_id, client, INTERVAL, poller=poller)
    wait_until(lambda: sim.polls(job_id) >= 2)
    # What a front-end that holds widgets weakly would leave: no registry entry.
    ipywidget._instances.pop(widget.model_id)
    widget.comm.on_msg(None)
    collected = weakref.ref(widget)

    del widget
    gc.collect()

    assert collected() is None
    wait_until(lambda: poller.pending == 0)
    assert polls_stay_at(sim, job_id, sim.polls(job_id))


def test_the_poller_holds_listeners_weakly():
    class Client:
        def get_job(self, job_id):
            from shark_widgets.models import Job

            return Job.from_dict({"job_id": job_id, "status": "processing"})

    class Viewer:
        def __init__(self):
            self.seen = 0

        def show(self, watch):
            self.seen += 1

    clock = [0.0]
    poller = Poller(start=False, clock=lambda: clock[0])
    viewer = Viewer()
    poller.follow(JobWatch(Client(), "job_1", interval=1.0), viewer.show)
    assert poller.run_due() == 1 and viewer.seen == 1

    del viewer
    gc.collect()
    clock[0] += 2.0

    assert poller.run_due() == 1
    assert poller.pending == 0
    clock[0] += 2.0
    assert poller.run_due() == 0


@pytest.mark.parametrize("ending", ["stop", "close", "terminal"])
def test_stop_close_and_a_terminal_state_each_end_polling(sim, client, poller, ending):
    processing = 0.1 if ending == "terminal" else math.inf
    job_id = sim.create_job(f"a shark ended by {ending}", processing=processing)
    widget = JobWidget(job_id, client, INTERVAL, poller=poller)
    wait_until(lambda: sim.polls(job_id) >= 2)

    if ending == "terminal":
        widget.wait(timeout=10)
    else:
        getattr(widget, ending)()

    assert widget.done and poller.pending == 0
    assert polls_stay_at(sim, job_id, sim.polls(job_id))
    widget.close()


class Blocking:
    """A task that holds its worker until released."""

    def __init__(self, release):
        self.started = threading.Event()
        self.release = release

    def run(self):
        self.started.set()
        self.release.wait(30)


def test_stopping_a_poller_wakes_its_threads_and_ends_them():
    poller = Poller(workers=3, name="test-stop")
    poller.schedule(Blocking(threading.Event()), delay=3600)

    poller.stop(timeout=2.0)

    assert not any(thread.is_alive() for thread in poller.threads)
    assert poller.pending == 0
    with pytest.raises(RuntimeError, match="stopped"):
        poller.schedule(Blocking(threading.Event()))


def test_workers_stuck_in_a_request_share_one_stop_deadline():
    release = threading.Event()
    poller = Poller(workers=3, name="test-stuck")
    stuck = [Blocking(release) for _ in range(3)]
    for task in stuck:
        poller.schedule(task)
    for task in stuck:
        assert task.started.wait(5)
    waits = []

    def recording(join):
        def timed_join(timeout=None):
            started = time.monotonic()
            join(timeout)
            waits.append(time.monotonic() - started)

        return timed_join

    for thread in poller.threads:
        thread.join = recording(thread.join)

    try:
        poller.stop(timeout=0.2)
    finally:
        release.set()

    assert len(waits) == 3 and sum(waits) <= 0.2 + 0.05
    assert all(thread.daemon for thread in poller.threads)


def test_the_shared_poller_runs_on_daemon_threads():
    threads = default_poller().threads

    assert threads and all(thread.daemon for thread in threads)


EXITING = textwrap.dedent(
    """
    import sys, time
    from shark_widgets import JobWidget

    widget = JobWidget(sys.argv[1], interval=0.05)
    deadline = time.monotonic() + 20
    while widget.status != "processing" and time.monotonic() < deadline:
        time.sleep(0.01)
    print(widget.status, flush=True)
    sys.stdin.readline()
    """
)


def test_the_interpreter_exits_at_once_mid_poll(sim, tmp_path):
    job_id = sim.create_job("a shark at exit", queued=0.0, processing=math.inf)
    sim.inject(Fault.hang(seconds=5.0), job_id=job_id, after=3)
    script = tmp_path / "exiting.py"
    script.write_text(EXITING)
    env = {
        **os.environ,
        "SHARKAPI_TOKEN": sim.token,
        "SHARKAPI_BASE_URL": sim.base_url,
    }
    process = subprocess.Popen(
        [sys.executable, str(script), job_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout.readline().strip() == "processing"
        # A worker is now inside a request the server will not answer for 5 s,
        # with a read timeout of 10 s.
        wait_until(
            lambda: any(r.job_id == job_id and r.fault == "hang" for r in sim.requests)
        )
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.wait(timeout=3) == 0
    finally:
        process.kill()
        process.wait()

    assert polls_stay_at(sim, job_id, sim.polls(job_id))
