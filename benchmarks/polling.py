"""The service page's polling loop against shark_widgets, side by side.

Runs the simulator in its own process and, for 10, 100 and 1000 concurrent
jobs, watches them twice: once with the pattern of the service's page (a
thread per job, a plain ``requests.get`` per poll, a 2-second sleep), once
with `JobWidget` objects on one shared poller. Then it measures, inside a
real kernel, how fast ``1 + 1`` answers while 1000 jobs poll, and the
resident memory of 1000 watched jobs.

    python benchmarks/polling.py                   # the full run, a few minutes
    python benchmarks/polling.py --quick           # smaller, well under a minute
    python benchmarks/polling.py --markdown benchmarks/RESULTS.md

The delay of a state change is the simulator's planned transition time
(``time.monotonic()``, system-wide on Linux) to the moment the watcher's
status changed in this process.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import comm
import psutil
import requests
from comm.base_comm import BaseComm

from shark_widgets import JobWidget, SharkClient
from shark_widgets.polling import Poller
from shark_widgets.widgets import job as job_module

PROMPTS = 8


@dataclass(frozen=True)
class Plan:
    """How big a run is."""

    interval: float
    time_scale: float
    sizes: tuple[int, ...]
    elapsed_jobs: int
    memory_jobs: int
    kernel_jobs: int
    kernel_extra: int
    idle_executes: int
    executes: int


FULL = Plan(
    interval=2.0,
    time_scale=1.0,
    sizes=(10, 100, 1000),
    elapsed_jobs=100,
    memory_jobs=1000,
    kernel_jobs=1000,
    kernel_extra=100,
    idle_executes=20,
    executes=100,
)
QUICK = Plan(
    interval=0.25,
    time_scale=0.1,
    sizes=(10, 100),
    elapsed_jobs=10,
    memory_jobs=200,
    kernel_jobs=200,
    kernel_extra=100,
    idle_executes=10,
    executes=20,
)
# Long enough that every job of the kernel and memory phases stays active
# while they are measured (queued for at least 0.5 s times this).
LONG_SCALE = 100.0


# The simulator, in its own process


class SimulatorProcess:
    """``python -m shark_widgets.simulator`` on a free loopback port."""

    def __init__(self, time_scale: float, tls: tuple[str, str] | None = None) -> None:
        https = [f"--tls-cert={tls[0]}", f"--tls-key={tls[1]}"] if tls else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shark_widgets.simulator",
                "--port=0",
                f"--time-scale={time_scale}",
                "--balance=100000",
                *https,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        found = None
        for _ in range(20):
            line = self.process.stdout.readline()
            found = re.search(r"SHARKAPI_BASE_URL=(\S+) SHARKAPI_TOKEN=(\S+)", line)
            if not line or found:
                break
        if not found:
            self.close()
            raise RuntimeError("the simulator did not start")
        self.base_url, self.token = found.groups()
        if not re.match(r"https?://(127\.0\.0\.1|localhost):", self.base_url):
            self.close()
            raise RuntimeError(f"not a loopback simulator: {self.base_url}")
        self._http = requests.Session()

    def stats(self) -> dict:
        response = self._http.get(
            f"{self.base_url}/_simulator/stats",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def submit(self, count: int, label: str) -> list[str]:
        with SharkClient(token=self.token, base_url=self.base_url) as client:
            return [
                client.generate(f"{label}: a shark, take {i % PROMPTS}").job_id
                for i in range(count)
            ]

    def client(self) -> SharkClient:
        return SharkClient(token=self.token, base_url=self.base_url)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=10)


@contextmanager
def simulator(
    time_scale: float, tls: tuple[str, str] | None = None
) -> Iterator[SimulatorProcess]:
    process = SimulatorProcess(time_scale, tls)
    try:
        yield process
    finally:
        process._http.close()
        process.close()


@contextmanager
def https_simulator(time_scale: float) -> Iterator[SimulatorProcess | None]:
    """The simulator over HTTPS with a throwaway certificate, trusted by this
    process through ``REQUESTS_CA_BUNDLE`` (None where openssl is missing)."""
    with tempfile.TemporaryDirectory() as folder:
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        made = (
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    key,
                    "-out",
                    cert,
                    "-days",
                    "1",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ],
                capture_output=True,
                check=False,
            )
            if shutil.which("openssl")
            else None
        )
        if made is None or made.returncode != 0:
            yield None
            return
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = cert
        try:
            with simulator(time_scale, (cert, key)) as sim:
                yield sim
        finally:
            if previous is None:
                del os.environ["REQUESTS_CA_BUNDLE"]
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous


# Front-end messages: a comm that counts what it would send


class Messages:
    """Counts widget state updates sent from threads other than the main one.

    The main thread builds the widgets; every update from another thread is
    the poller reporting a change, which is what this benchmark counts. Polls
    whose answer changed nothing are counted apart, with what they sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = threading.local()
        self.updates = 0
        self.quiet_polls = 0
        self.quiet_updates = 0

    def record(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self._thread.updates = self._sent_here() + 1
            with self._lock:
                self.updates += 1

    def _sent_here(self) -> int:
        return getattr(self._thread, "updates", 0)

    def around_polls(self, on_step: Callable) -> Callable:
        """Wrap `JobWidget._on_step`, which runs after every poll of a job."""

        def run(widget, watch):
            before = (widget._job, widget.note, widget._error, widget._full_image)
            sent = self._sent_here()
            try:
                return on_step(widget, watch)
            finally:
                after = (widget._job, widget.note, widget._error, widget._full_image)
                if not watch.done and after == before:
                    with self._lock:
                        self.quiet_polls += 1
                        self.quiet_updates += self._sent_here() - sent

        return run


MESSAGES = Messages()


class RecordingComm(BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        if msg_type == "comm_msg":
            MESSAGES.record()


comm.create_comm = RecordingComm
job_module.JobWidget._on_step = MESSAGES.around_polls(job_module.JobWidget._on_step)


# Image downloads and previews: shark_widgets does them, the page's loop does not


class ImageWork:
    """CPU seconds spent downloading images and making previews."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cpu = 0.0

    def timed(self, function: Callable) -> Callable:
        def run(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.cpu += time.thread_time() - started

        return run


IMAGE_WORK = ImageWork()
job_module.make_preview = IMAGE_WORK.timed(job_module.make_preview)
SharkClient.fetch_image = IMAGE_WORK.timed(SharkClient.fetch_image)


# One run of one pattern


@dataclass
class Run:
    pattern: str
    jobs: int
    threads: int = 0
    connections: int = 0
    image_connections: int = 0
    polls: int = 0
    cpu: float = 0.0
    image_cpu: float = 0.0
    delays: list[float] = field(default_factory=list)
    missed: int = 0
    requests_vs_ideal: float = 0.0
    messages: int | None = None
    quiet_polls: int | None = None
    quiet_messages: int | None = None
    changes: int = 0
    errors: int = 0
    wall: float = 0.0

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * (self.cpu - self.image_cpu) / max(1, self.polls)


def cpu_excluding_main() -> float:
    """CPU seconds of the whole process minus those of the main thread."""
    return time.process_time() - time.thread_time()


def naive_wait(job_id, base_url, token, interval, seen, errors, stop):
    """The page's loop, with a deadline and a stop flag added so it ends."""
    url = f"{base_url}/v1/jobs/{job_id}"
    headers = {"Authorization": f"Bearer {token}"}
    last = None
    while not stop.is_set():
        try:
            job = requests.get(url, headers=headers, timeout=(5, 30)).json()
        except (requests.RequestException, ValueError):
            errors.append(job_id)
            time.sleep(interval)
            continue
        if job["status"] != last:
            last = job["status"]
            seen.append((job_id, last, time.monotonic()))
        match job["status"]:
            case "complete" | "failed" | "moderated":
                # The page raises for the last two; every job here completes.
                return job
            case _:
                time.sleep(interval)
    return None


def run_naive(
    sim: SimulatorProcess, jobs: int, plan: Plan, label: str = "page's loop"
) -> Run:
    run = Run(label, jobs)
    ids = sim.submit(jobs, f"naive {jobs}")
    seen: list[tuple[str, str, float]] = []
    errors: list[str] = []
    stop = threading.Event()
    before = sim.stats()
    existing = set(threading.enumerate())
    started: dict[str, float] = {}
    cpu0, wall0 = cpu_excluding_main(), time.monotonic()

    threads = []
    for job_id in ids:
        thread = threading.Thread(
            target=naive_wait,
            args=(job_id, sim.base_url, sim.token, plan.interval, seen, errors, stop),
            daemon=True,
        )
        started[job_id] = time.monotonic()
        thread.start()
        threads.append(thread)
    run.threads = len(set(threading.enumerate()) - existing)
    deadline = time.monotonic() + deadline_for(plan)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stop.set()

    run.cpu = cpu_excluding_main() - cpu0
    run.wall = time.monotonic() - wall0
    for thread in threads:
        thread.join(plan.interval + 5)
    run.errors = len(errors)
    summarise(run, sim, before, started, seen, plan)
    return run


def run_widgets(
    sim: SimulatorProcess,
    jobs: int,
    plan: Plan,
    show_elapsed: bool = False,
    label: str = "shark_widgets",
) -> Run:
    label += " (elapsed ticking)" if show_elapsed else ""
    run = Run(label, jobs)
    ids = sim.submit(jobs, f"widgets {jobs} {show_elapsed}")
    seen: list[tuple[str, str, float]] = []
    client = sim.client()
    before = sim.stats()
    existing = set(threading.enumerate())
    started: dict[str, float] = {}
    messages0 = MESSAGES.updates
    quiet0 = (MESSAGES.quiet_polls, MESSAGES.quiet_updates)
    image0 = IMAGE_WORK.cpu
    cpu0, wall0 = cpu_excluding_main(), time.monotonic()

    poller = Poller()
    widgets = []
    for job_id in ids:
        started[job_id] = time.monotonic()
        widget = JobWidget(
            job_id, client, plan.interval, show_elapsed=show_elapsed, poller=poller
        )
        widget.observe(_recorder(seen, job_id), "status")
        widgets.append(widget)
    run.threads = len(set(threading.enumerate()) - existing)
    deadline = time.monotonic() + deadline_for(plan)
    for widget in widgets:
        try:
            widget.wait(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            run.errors += 1

    run.cpu = cpu_excluding_main() - cpu0
    run.wall = time.monotonic() - wall0
    run.messages = MESSAGES.updates - messages0
    run.quiet_polls = MESSAGES.quiet_polls - quiet0[0]
    run.quiet_messages = MESSAGES.quiet_updates - quiet0[1]
    run.image_cpu = IMAGE_WORK.cpu - image0
    run.errors += sum(widget.error is not None for widget in widgets)
    poller.stop()
    for widget in widgets:
        widget.close()
    client.close()
    summarise(run, sim, before, started, seen, plan)
    return run


def _recorder(seen: list, job_id: str) -> Callable[[dict], None]:
    def record(change: dict) -> None:
        seen.append((job_id, change["new"], time.monotonic()))

    return record


def deadline_for(plan: Plan) -> float:
    return 15.0 * plan.time_scale + 10 * plan.interval + 60.0


def summarise(run: Run, sim: SimulatorProcess, before: dict, started, seen, plan):
    after = sim.stats()
    run.connections = after["connections_accepted"] - before["connections_accepted"]
    run.image_connections = (
        after["image_connections_accepted"] - before["image_connections_accepted"]
    )
    first_seen: dict[tuple[str, str], float] = {}
    for job_id, status, moment in seen:
        first_seen.setdefault((job_id, status), moment)
    run.changes = len(first_seen)
    ratios = []
    for job_id, since in started.items():
        job = after["jobs"][job_id]
        run.polls += job["polls"]
        planned = job["transitions"]
        end = max(planned.values())
        ratios.append(job["polls"] / (max(0.0, end - since) / plan.interval + 1))
        for status, moment in planned.items():
            if status == "queued" or moment <= since:
                continue
            if (job_id, status) in first_seen:
                run.delays.append(first_seen[(job_id, status)] - moment)
            else:
                run.missed += 1
    run.requests_vs_ideal = sum(ratios) / len(ratios)


# The kernel and memory phases


def execute(kc, code: str, timeout: float = 300.0, **kwargs) -> tuple[float, dict]:
    """Run ``code`` in the kernel; return the round-trip seconds and the reply."""
    sent = time.perf_counter()
    msg_id = kc.execute(code, **kwargs)
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    took = time.perf_counter() - sent
    content = reply["content"]
    if content["status"] != "ok":
        raise RuntimeError("\n".join(content.get("traceback", [])) or str(content))
    return took, content


def drain(kc, stop: threading.Event, counts: dict) -> None:
    while not stop.is_set():
        try:
            message = kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        kind = message["msg_type"]
        counts[kind] = counts.get(kind, 0) + 1


def kernel_phase(plan: Plan) -> dict:
    from jupyter_client.manager import start_new_kernel

    result: dict = {}
    with simulator(LONG_SCALE) as sim:
        ids = sim.submit(plan.kernel_jobs + plan.kernel_extra, "kernel")
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
        stop = threading.Event()
        counts: dict = {}
        drainer = threading.Thread(target=drain, args=(kc, stop, counts), daemon=True)
        drainer.start()
        try:
            execute(kc, "1 + 1")
            idle = [execute(kc, "1 + 1")[0] for _ in range(plan.idle_executes)]
            _, reply = execute(
                kc,
                "import time\n"
                "from shark_widgets import JobWidget, SharkClient\n"
                "from shark_widgets.polling import default_poller\n"
                f"client = SharkClient(token={sim.token!r},"
                f" base_url={sim.base_url!r})\n"
                f"ids = {ids!r}\n"
                "started = time.perf_counter()\n"
                f"watched = [JobWidget(j, client, {plan.interval}, show_elapsed=False)"
                f" for j in ids[:{plan.kernel_jobs}]]\n"
                "created = time.perf_counter() - started\n",
                user_expressions={"created": "created"},
            )
            result["create_all"] = _expression(reply, "created")
            time.sleep(plan.interval * 1.5)

            before = sim.stats()
            busy = []
            for _ in range(plan.executes):
                busy.append(execute(kc, "1 + 1")[0])
                time.sleep(0.1)
            after = sim.stats()
            window = after["monotonic"] - before["monotonic"]
            result["polls_per_second"] = (after["requests"] - before["requests"]) / (
                window
            )

            took, reply = execute(
                kc,
                "started = time.perf_counter()\n"
                f"extra = [JobWidget(j, client, {plan.interval}, show_elapsed=False)"
                f" for j in ids[{plan.kernel_jobs}:]]\n"
                "created = time.perf_counter() - started\n",
                user_expressions={
                    "created": "created",
                    "threads": "len(default_poller().threads)",
                    "active": "sum(not w.done for w in watched)",
                },
            )
            result["create_extra"] = _expression(reply, "created")
            result["create_extra_round_trip"] = took
            result["kernel_threads"] = int(_expression(reply, "threads"))
            result["active"] = int(_expression(reply, "active"))
            execute(kc, "for w in watched + extra: w.close()")
        finally:
            stop.set()
            drainer.join(2)
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    result["idle"] = idle
    result["busy"] = busy
    result["iopub"] = counts
    return result


def _expression(reply: dict, name: str) -> float:
    value = reply["user_expressions"][name]
    if value["status"] != "ok":
        raise RuntimeError(f"{name}: {value}")
    return float(value["data"]["text/plain"])


def memory_phase(plan: Plan) -> dict:
    process = psutil.Process()
    result = {}
    with simulator(LONG_SCALE) as sim:
        ids = sim.submit(plan.memory_jobs, "memory")
        client = sim.client()
        gc.collect()
        rss0 = process.memory_info().rss
        poller = Poller()
        widgets = [
            JobWidget(j, client, plan.interval, show_elapsed=False, poller=poller)
            for j in ids
        ]
        wait_until(lambda: all(w.status != "unread" for w in widgets), 60)
        gc.collect()
        rss1 = process.memory_info().rss
        poller.stop()
        for widget in widgets:
            widget.close()
        widgets.clear()
        client.close()
        result["widgets"] = (rss1 - rss0) / plan.memory_jobs * 1000

        ids = sim.submit(plan.memory_jobs, "memory naive")
        stop = threading.Event()
        seen: list = []
        gc.collect()
        rss0 = process.memory_info().rss
        threads = [
            threading.Thread(
                target=naive_wait,
                args=(j, sim.base_url, sim.token, plan.interval, seen, [], stop),
                daemon=True,
            )
            for j in ids
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(seen) >= len(ids), 60)
        gc.collect()
        rss1 = process.memory_info().rss
        stop.set()
        for thread in threads:
            thread.join(plan.interval + 5)
        result["naive"] = (rss1 - rss0) / plan.memory_jobs * 1000
    return result


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


# Reporting


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.{1 if seconds < 0.1 else 0}f} ms"


def scale_table(pairs: list[tuple[Run, Run]]) -> list[str]:
    lines = [
        "| jobs | pattern | polling threads | TCP connections (API + images)"
        " | CPU s / 1000 polls | naive / ours | state-change delay p50 / p99"
        " | requests per job / ideal | front-end messages per job |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for naive, ours in pairs:
        ratio = naive.cpu_per_1000 / max(1e-9, ours.cpu_per_1000)
        for run in (naive, ours):
            messages = (
                "n/a (no widget)"
                if run.messages is None
                else f"{run.messages / run.jobs:.1f}"
            )
            lines.append(
                f"| {run.jobs} | {run.pattern} | {run.threads}"
                f" | {run.connections} + {run.image_connections}"
                f" | {run.cpu_per_1000:.2f} | {'' if run is naive else f'{ratio:.1f}x'}"
                f" | {ms(percentile(run.delays, 50))}"
                f" / {ms(percentile(run.delays, 99))}"
                f" | {run.requests_vs_ideal:.2f} | {messages} |"
            )
    return lines


def details(runs: list[Run]) -> list[str]:
    lines = [
        "| jobs | pattern | polls | status changes seen | delays measured"
        " | missed | errors | polls that changed nothing: their messages"
        " | CPU s, all | of which images | wall s |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for run in runs:
        quiet = (
            "n/a"
            if run.quiet_polls is None
            else f"{run.quiet_polls}: {run.quiet_messages}"
        )
        lines.append(
            f"| {run.jobs} | {run.pattern} | {run.polls} | {run.changes}"
            f" | {len(run.delays)} | {run.missed} | {run.errors} | {quiet}"
            f" | {run.cpu:.2f}"
            f" | {run.image_cpu:.2f} | {run.wall:.1f} |"
        )
    return lines


def report(plan: Plan, pairs, secure, elapsed: Run, kernel: dict, memory: dict) -> str:
    biggest_naive, biggest = pairs[-1]
    ratio = biggest_naive.cpu_per_1000 / max(1e-9, biggest.cpu_per_1000)
    secure_ratio = (
        secure[0][0].cpu_per_1000 / max(1e-9, secure[0][1].cpu_per_1000)
        if secure
        else 0.0
    )
    busy99 = percentile(kernel["busy"], 99)
    p99 = percentile(biggest.delays, 99)
    ticking = elapsed.messages / elapsed.jobs
    out = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {platform.system()} {platform.release()}.",
        f"Interval {plan.interval} s; simulator time scale {plan.time_scale}"
        f" (jobs last {3.5 * plan.time_scale:.1f} to {15 * plan.time_scale:.1f} s);"
        f" every job ends complete and shark_widgets downloads its image and makes"
        " its preview (the page's loop does neither): the CPU of that work is"
        " left out of CPU per poll and shown in the details.",
        "",
        *scale_table(pairs),
        "",
        "The same over HTTPS, as the service speaks (a throwaway certificate;"
        " the page's loop opens a TLS connection for every poll):",
        "",
        *(
            scale_table(secure)
            if secure
            else ["(skipped: no openssl to make a certificate)"]
        ),
        "",
        f"In a real kernel, with {kernel['active']} of {plan.kernel_jobs} JobWidgets"
        f" polling ({kernel['polls_per_second']:.0f} polls/s,"
        f" {kernel['kernel_threads']} polling threads):",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| `1 + 1` round trip, idle kernel: p50 / p99"
        f" | {ms(percentile(kernel['idle'], 50))}"
        f" / {ms(percentile(kernel['idle'], 99))}"
        " |",
        f"| `1 + 1` round trip, {plan.kernel_jobs} jobs polling: p50 / p99"
        f" | {ms(percentile(kernel['busy'], 50))} / {ms(busy99)} |",
        f"| creating {plan.kernel_extra} JobWidgets in one cell"
        f" | {ms(kernel['create_extra'])} |",
        f"| creating the first {plan.kernel_jobs} JobWidgets in one cell"
        f" | {ms(kernel['create_all'])} |",
        f"| resident memory per 1000 watched jobs: shark_widgets"
        f" | {memory['widgets'] / 2**20:.1f} MB |",
        f"| resident memory per 1000 watched jobs: the page's loop"
        f" | {memory['naive'] / 2**20:.1f} MB |",
        f"| front-end messages per job, {elapsed.jobs} jobs, elapsed time ticking"
        f" | {ticking:.1f} (vs"
        f" {_messages_per_job(pairs, elapsed.jobs)} without) |",
        "",
        "Details:",
        "",
        *details([run for pair in pairs + secure for run in pair] + [elapsed]),
        "",
        "Targets:",
        "",
    ]
    threads_ok = biggest.threads <= 8
    targets = [
        (
            f"{biggest.jobs} jobs polled by at most 8 threads",
            threads_ok,
            f"{biggest.threads}",
        ),
        (
            "at most 10 TCP connections for the whole run",
            biggest.connections <= 10,
            f"{biggest.connections} to the API, {biggest.image_connections} to the"
            " image host",
        ),
        (
            "client CPU per poll at least 3x lower, over HTTPS as the service speaks",
            secure_ratio >= 3,
            f"{secure_ratio:.1f}x",
        ),
        (
            "client CPU per poll at least 3x lower, over plain HTTP on loopback"
            " (where the page's loop pays no handshake)",
            ratio >= 3,
            f"{ratio:.1f}x",
        ),
        (
            f"state-change delay p99 <= interval + 250 ms at {biggest.jobs} jobs",
            p99 <= plan.interval + 0.25,
            ms(p99),
        ),
        (
            "`1 + 1` under 50 ms (p99) while jobs poll",
            busy99 < 0.05,
            ms(busy99),
        ),
        (
            f"creating {plan.kernel_extra} widgets under 1 s",
            kernel["create_extra"] < 1.0,
            ms(kernel["create_extra"]),
        ),
    ]
    for text, met, value in targets:
        out.append(f"- {'met' if met else 'NOT met'}: {text} ({value})")
    return "\n".join(out) + "\n"


def _messages_per_job(pairs, jobs: int) -> str:
    for _, ours in pairs:
        if ours.jobs == jobs and ours.messages is not None:
            return f"{ours.messages / ours.jobs:.1f}"
    return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument(
        "--sizes", type=lambda text: tuple(int(n) for n in text.split(","))
    )
    parser.add_argument("--markdown", help="also write the results to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.sizes:
        plan = Plan(**{**plan.__dict__, "sizes": args.sizes})

    started = time.monotonic()
    pairs = []
    with simulator(plan.time_scale) as sim:
        for jobs in plan.sizes:
            naive = run_naive(sim, jobs, plan)
            print(f"{jobs} jobs, page's loop: {naive.wall:.1f} s", flush=True)
            ours = run_widgets(sim, jobs, plan)
            print(f"{jobs} jobs, shark_widgets: {ours.wall:.1f} s", flush=True)
            pairs.append((naive, ours))
        elapsed = run_widgets(sim, plan.elapsed_jobs, plan, show_elapsed=True)
    secure = []
    with https_simulator(plan.time_scale) as sim:
        if sim is not None:
            jobs = plan.sizes[-1]
            naive = run_naive(sim, jobs, plan, "page's loop, HTTPS")
            print(
                f"{jobs} jobs over HTTPS, page's loop: {naive.wall:.1f} s", flush=True
            )
            ours = run_widgets(sim, jobs, plan, label="shark_widgets, HTTPS")
            print(f"{jobs} jobs over HTTPS, shark_widgets: {ours.wall:.1f} s")
            secure.append((naive, ours))
    memory = memory_phase(plan)
    print("memory measured", flush=True)
    kernel = kernel_phase(plan)
    print(f"kernel measured; {time.monotonic() - started:.0f} s in all\n", flush=True)

    text = report(plan, pairs, secure, elapsed, kernel, memory)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            mode = "--quick" if args.quick else "full"
            out.write(f"# Polling benchmark ({mode} run)\n\n")
            out.write("`python benchmarks/polling.py")
            out.write(" --quick`\n\n" if args.quick else "`\n\n")
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
