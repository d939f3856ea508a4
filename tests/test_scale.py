"""Many jobs at once: threads, connections, requests and front-end messages.

Counts only. How fast things go depends on the machine and is reported by
``benchmarks/polling.py``, not asserted here.
"""

import base64
import itertools
import math
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import comm
import ipywidgets
import nbformat
import pytest
import requests
from comm.base_comm import BaseComm

from shark_widgets import JobWidget
from shark_widgets.images import PREVIEW_WIDTH, image_size
from shark_widgets.polling import Poller
from shark_widgets.simulator import SharkSimulator

from .notebook_runs import run_notebook

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "polling.py"
INTERVAL = 0.1
# Jobs last 0.35 to 1.5 s: a few polls each at INTERVAL.
TIME_SCALE = 0.1


@pytest.fixture(scope="module")
def farm():
    """A simulator of this module's own, so that its counters are ours alone."""
    with SharkSimulator(time_scale=TIME_SCALE) as simulator:
        simulator.token_rich = simulator.new_account("1000.00")
        yield simulator


@pytest.fixture
def client(farm):
    with farm.client(farm.token_rich) as shark:
        yield shark


@pytest.fixture
def pool():
    """A poller as every widget shares it by default (default size)."""
    own = Poller(name="scale-poller")
    yield own
    own.stop()


@pytest.fixture
def sent(monkeypatch):
    """Every state update a widget sends to the front-end, as (model id, keys)."""
    updates = []

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            if msg_type == "comm_msg" and data and data.get("method") == "update":
                updates.append((self.comm_id, tuple(sorted(data["state"]))))

    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    return updates


class Clock:
    """A hand-driven clock for a poller started with ``start=False``."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def parts(widget):
    """The model ids of ``widget`` and every widget it holds (layouts included)."""
    found = {}
    stack = [widget]
    while stack:
        part = stack.pop()
        if part.model_id in found:
            continue
        found[part.model_id] = part
        for name in part.keys:
            value = getattr(part, name)
            values = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in values if isinstance(v, ipywidgets.Widget))
    return set(found)


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def new_threads(before):
    """Threads started since ``before``, leaving out the simulator's handlers."""
    return {
        thread
        for thread in set(threading.enumerate()) - before
        if "process_request_thread" not in thread.name
    }


def stats(farm, session):
    response = session.get(
        f"{farm.base_url}/_simulator/stats",
        headers={"Authorization": f"Bearer {farm.token_rich}"},
        timeout=10,
    )
    return response.json()


def test_two_hundred_jobs_share_a_few_threads_and_connections(farm, client, pool):
    ids = [
        farm.create_job(
            f"a shark, take {i}", token=farm.token_rich, processing=math.inf
        )
        for i in range(200)
    ]
    before = set(threading.enumerate())
    with requests.Session() as session:
        first = stats(farm, session)

        few = [JobWidget(j, client, INTERVAL, poller=pool) for j in ids[:20]]
        threads_for_20 = new_threads(before)
        many = few + [JobWidget(j, client, INTERVAL, poller=pool) for j in ids[20:]]
        wait_until(lambda: all(farm.polls(j) >= 3 for j in ids))
        threads_for_200 = new_threads(before)
        last = stats(farm, session)
        for widget in many:
            widget.close()

    assert threads_for_200 == threads_for_20 <= set(pool.threads)
    assert len(pool.threads) == pool.workers <= 8
    opened = last["connections_accepted"] - first["connections_accepted"]
    assert 1 <= opened <= pool.workers <= 10


def test_a_batch_polls_close_to_the_ideal_over_pooled_connections(farm, client, pool):
    with requests.Session() as session:
        first = stats(farm, session)
        started = {}
        widgets = []
        for i in range(30):
            job_id = farm.create_job(
                f"a sweep shark, take {i % 4}", token=farm.token_rich
            )
            started[job_id] = time.monotonic()
            widgets.append(
                JobWidget(job_id, client, INTERVAL, show_elapsed=False, poller=pool)
            )
        for widget in widgets:
            widget.wait(timeout=30)
        last = stats(farm, session)

    ratios = []
    for job_id, since in started.items():
        ends = max(farm.transitions(job_id).values())
        ideal = (ends - since) / INTERVAL + 1
        polls = farm.polls(job_id)
        assert polls <= ideal + 2, "polled faster than the interval"
        ratios.append(polls / ideal)
        arrivals = [r.time for r in farm.requests if r.job_id == job_id]
        assert min(b - a for a, b in itertools.pairwise(arrivals)) > INTERVAL / 2
    assert all(widget.status == "complete" for widget in widgets)
    assert 0.75 <= sum(ratios) / len(ratios) <= 1.2
    for key in ("connections_accepted", "image_connections_accepted"):
        assert last[key] - first[key] <= pool.workers
    assert pool.pending == 0


def test_polls_that_change_nothing_send_nothing(farm, client, sent):
    job_id = farm.create_job(
        "a shark that never ends", token=farm.token_rich, queued=0, processing=math.inf
    )
    clock = Clock()
    poller = Poller(start=False, clock=clock)
    widget = JobWidget(job_id, client, INTERVAL, show_elapsed=False, poller=poller)
    ours = parts(widget)

    assert [m for m in sent if m[0] in ours] == []
    poller.run_due()
    assert widget.status == "processing"
    after_first = len([m for m in sent if m[0] in ours])

    for _ in range(6):
        clock.now += 1.0
        assert poller.run_due() == 1

    assert farm.polls(job_id) == 7
    assert len([m for m in sent if m[0] in ours]) == after_first
    widget.close()


def test_one_change_sends_one_update_to_each_part_it_touches(farm, client, sent):
    job_id = farm.create_job(
        "a shark in a hurry", token=farm.token_rich, queued=0.3, processing=0.3
    )
    clock = Clock()
    poller = Poller(start=False, clock=clock)
    widget = JobWidget(job_id, client, INTERVAL, show_elapsed=False, poller=poller)
    ours = parts(widget)
    statuses = []
    widget.observe(lambda change: statuses.append(change["new"]), "status")
    planned = farm.transitions(job_id)

    def step():
        """Poll once; return the updates it sent, per part."""
        mark = len(sent)
        clock.now += 1.0
        poller.run_due()
        return Counter(model for model, _ in sent[mark:] if model in ours)

    queued = step()
    unchanged = step()
    time.sleep(max(0.0, planned["processing"] - time.monotonic()) + 0.02)
    processing = step()
    time.sleep(max(0.0, planned["complete"] - time.monotonic()) + 0.02)
    complete = step()
    with_image = step()

    assert statuses == ["queued", "processing", "complete"]
    assert unchanged == Counter()
    assert processing == Counter({widget._header.model_id: 1})
    for change in (queued, complete, with_image):
        assert change and set(change.values()) == {1}
    assert widget._image.model_id in with_image and widget.done
    assert poller.pending == 0
    widget.close()


@pytest.mark.parametrize("prompt", ["a shark [fail]", "a shark"])
def test_a_terminal_job_leaves_the_schedule_at_once(farm, client, prompt):
    job_id = farm.create_job(prompt, token=farm.token_rich, queued=0, processing=0)
    clock = Clock()
    poller = Poller(start=False, clock=clock)
    widget = JobWidget(job_id, client, INTERVAL, show_elapsed=True, poller=poller)
    assert poller.pending == 2

    for _ in range(3):
        if widget.done:
            break
        poller.run_due()

    assert widget.done and widget.status in ("failed", "complete")
    assert poller.pending == 0
    assert farm.polls(job_id) == 1
    widget.close()


NOTEBOOK = [
    "import os\n"
    "from shark_widgets import JobWidget\n"
    "widgets = [\n"
    "    JobWidget.submit(f'a 2k shark in the deep, take {i}', mode='2k',"
    f" interval={INTERVAL})\n"
    "    for i in range(10)\n"
    "]\n"
    "for widget in widgets:\n"
    "    display(widget)",
    "for widget in widgets:\n"
    "    widget.wait(timeout=60)\n"
    "widgets[0].save(os.path.join(os.getcwd(), 'full.jpg'))\n"
    "print(sorted({(w.status, len(w.image) > 0) for w in widgets}))",
]


def test_ten_finished_2k_jobs_make_a_notebook_under_3_mb(farm, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARKAPI_BASE_URL", farm.base_url)
    monkeypatch.setenv("SHARKAPI_TOKEN", farm.token_rich)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK]

    run_notebook(notebook, tmp_path)
    saved = tmp_path / "ten.ipynb"
    nbformat.write(notebook, saved)

    printed = [o.get("text") for o in notebook.cells[1].outputs if o.get("name")]
    assert "[('complete', True)]\n" in printed, notebook.cells[1].outputs
    assert image_size((tmp_path / "full.jpg").read_bytes()) == (2048, 2048)
    states = notebook.metadata["widgets"][WIDGET_STATE]["state"].values()
    shown = [
        base64.b64decode(buffer["data"])
        for state in states
        if state["model_name"] == "ImageModel"
        for buffer in state.get("buffers", [])
        if buffer["data"]
    ]
    assert len(shown) == 10
    assert all(image_size(data)[0] <= PREVIEW_WIDTH for data in shown)
    assert saved.stat().st_size < 3 * 2**20


@pytest.mark.slow
def test_the_benchmark_runs_in_quick_mode():
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(
        r"^\| (\d+) \| shark_widgets \| (\d+) \| (\d+) \+ (\d+) \|",
        done.stdout,
        re.MULTILINE,
    )
    assert [int(jobs) for jobs, *_ in rows] == [10, 100]
    for _, threads, api, images in rows:
        assert int(threads) <= 8 and int(api) <= 10 and int(images) <= 10
    secure = re.findall(
        r"^\| 100 \| shark_widgets, HTTPS \| (\d+) \| (\d+) \+", done.stdout, re.M
    )
    if shutil.which("openssl"):
        assert len(secure) == 1 and int(secure[0][1]) <= 10
    quiet = re.findall(r"\| (\d+): (\d+) \|", done.stdout)
    assert len(quiet) == 3 + len(secure) and all(int(n) == 0 for _, n in quiet)
    assert "`1 + 1` round trip, 200 jobs polling" in done.stdout
