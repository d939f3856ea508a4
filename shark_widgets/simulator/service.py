"""The simulated SharkAPI: accounts, wallets, jobs on a clock, and its WSGI apps.

A job's status is computed from ``time.monotonic()`` whenever it is read:
``queued`` for a drawn delay, ``processing`` for another, then its terminal
outcome, which the prompt decides when the job is created. The wallet is
charged exactly once, under the lock, the first time anything looks at a
job (a poll, an image request, :meth:`Service.balance`) after it became
``complete``: what anyone can observe is the same as a charge at that moment.

Timestamps are ISO 8601 UTC in whole seconds with a ``Z`` suffix, as on the
service's public page (``"2024-01-15T10:23:44Z"``); ``completed_at`` is set
only for ``complete`` jobs.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from .faults import Fault, FaultBook
from .images import render_jpeg

__all__ = ["ApiError", "ImageRequestRecord", "RequestRecord", "Service"]

logger = logging.getLogger(__name__)

PRICES: dict[str, Decimal] = {"1k": Decimal("0.01"), "2k": Decimal("0.02")}
MAX_PROMPT = 2000
FAILED_ERROR = "Generation service timeout. No charge applied."
_QUEUED_RANGE = (0.5, 3.0)
_PROCESSING_RANGE = (3.0, 12.0)
_JOB_PATH = re.compile(r"^/v1/jobs/([^/]+)$")
_IMAGE_PATH = re.compile(r"^/out/([^/]+)\.jpg$")
STATS_PATH = "/_simulator/stats"


class ApiError(ValueError):
    """A request the service refuses, with the HTTP status it answers."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class RequestRecord:
    """One request to the API origin, as the log keeps it.

    ``status_code`` is None when a fault dropped the connection unanswered.
    """

    time: float
    method: str
    path: str
    job_id: str | None
    status_code: int | None
    fault: str | None


@dataclass(frozen=True)
class ImageRequestRecord:
    """One request to the image origin, with the Authorization header it carried."""

    time: float
    path: str
    authorization: str | None
    status_code: int | None
    fault: str | None


@dataclass
class _Account:
    balance: Decimal
    unsettled: list[_Job] = field(default_factory=list)


@dataclass
class _Job:
    job_id: str
    token: str
    prompt: str
    mode: str
    outcome: str
    created: float
    created_wall: datetime
    starts: float
    ends: float

    def status(self, now: float) -> str:
        if now < self.starts:
            return "queued"
        if now < self.ends:
            return "processing"
        return self.outcome


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> Response:
    response = _json({"error": message}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


class Service:
    """All the simulated state behind one lock, and the two WSGI apps on it."""

    def __init__(
        self,
        time_scale: float = 1.0,
        moderation_words: Iterable[str] = (),
        seed: int = 0,
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.time_scale = time_scale
        self.seed = seed
        self.image_base_url = ""
        self.faults = FaultBook()
        self._moderation = [
            re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
            for word in moderation_words
            if word.strip()
        ]
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._jobs: dict[str, _Job] = {}
        self._sequence = 0
        self._requests: list[RequestRecord] = []
        self._image_requests: list[ImageRequestRecord] = []
        self._polls: Counter[str] = Counter()
        self.connection_counts: Callable[[], dict[str, int]] = dict

    # Accounts and jobs

    def new_account(
        self, balance: str | Decimal = "10.00", token: str | None = None
    ) -> str:
        """Open an account holding ``balance`` dollars; return its token.

        ``token`` chooses the token (a canary a test searches for, say); it
        must be new, printable and without spaces. By default one is drawn.
        """
        if token is None:
            token = "sk_test_" + secrets.token_urlsafe(18)
        elif not token or not token.isprintable() or any(c.isspace() for c in token):
            raise ValueError("a token must be non-empty, printable, without spaces")
        with self._lock:
            if token in self._accounts:
                raise ValueError("an account with this token exists already")
            self._accounts[token] = _Account(Decimal(str(balance)))
        return token

    def balance(self, token: str) -> Decimal:
        """The wallet balance of ``token``'s account, after settling its jobs."""
        with self._lock:
            account = self._account(token)
            self._settle_account(account, time.monotonic())
            return account.balance

    def create_job(
        self,
        prompt: str,
        mode: str = "1k",
        token: str | None = None,
        queued: float | None = None,
        processing: float | None = None,
    ) -> str:
        """Create a job as ``POST /v1/generate`` would; return its id.

        ``queued`` and ``processing`` override the drawn durations, in seconds
        of real time; ``processing=math.inf`` keeps the job processing forever.
        Raises :class:`ApiError` (a ValueError) for what the API refuses.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ApiError(400, "'prompt' must be a non-empty string.")
        if len(prompt) > MAX_PROMPT:
            raise ApiError(400, f"'prompt' must be at most {MAX_PROMPT} characters.")
        if not isinstance(mode, str) or mode not in PRICES:
            raise ApiError(400, '\'mode\' must be "1k" or "2k".')
        with self._lock:
            if token is None or token not in self._accounts:
                raise ApiError(401, "Invalid API token.")
            account = self._accounts[token]
            now = time.monotonic()
            self._settle_account(account, now)
            # Jobs still running will be charged if they complete: they hold
            # their price, so several jobs at once never take a wallet below 0.
            held = sum((PRICES[j.mode] for j in account.unsettled), Decimal(0))
            if account.balance - held < PRICES[mode]:
                raise ApiError(402, "Insufficient wallet balance for this job.")
            rng = random.Random(self.seed + self._sequence)
            self._sequence += 1
            drawn_queued = rng.uniform(*_QUEUED_RANGE) * self.time_scale
            drawn_processing = rng.uniform(*_PROCESSING_RANGE) * self.time_scale
            starts = now + (drawn_queued if queued is None else queued)
            job = _Job(
                job_id="job_" + secrets.token_hex(6),
                token=token,
                prompt=prompt,
                mode=mode,
                outcome=self._outcome(prompt),
                created=now,
                created_wall=datetime.now(timezone.utc),
                starts=starts,
                ends=starts + (drawn_processing if processing is None else processing),
            )
            self._jobs[job.job_id] = job
            if job.outcome == "complete":
                account.unsettled.append(job)
        logger.debug("created %s (%s, ends %s)", job.job_id, mode, job.outcome)
        return job.job_id

    def job_body(self, job_id: str, token: str) -> dict[str, Any]:
        """The job as ``GET /v1/jobs/<id>`` shows it to ``token``'s account.

        Raises :class:`ApiError` 404 alike for an unknown job and for another
        account's job.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.token != token:
                raise ApiError(404, "Job not found.")
            now = time.monotonic()
            self._settle_account(self._accounts[token], now)
            return self._body(job, job.status(now))

    def transitions(self, job_id: str) -> dict[str, float]:
        """When the job enters each status, as ``time.monotonic()`` values.

        These are the planned times, fixed at creation, including those not
        reached yet; a job that processes forever has no terminal entry.
        """
        with self._lock:
            job = self._jobs[job_id]
        planned = {"queued": job.created, "processing": job.starts}
        if math.isfinite(job.ends):
            planned[job.outcome] = job.ends
        return planned

    # Logs

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the API request log, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def image_requests(self) -> list[ImageRequestRecord]:
        """A copy of the image request log, oldest first."""
        with self._lock:
            return list(self._image_requests)

    def stats(self, token: str) -> dict[str, Any]:
        """Counters for an observer in another process (``GET /_simulator/stats``).

        Connections accepted and requests served on both origins, and for each
        job of ``token``'s account its polls and planned transitions, as
        ``time.monotonic()`` values: on Linux that clock is system-wide, so
        another process can compare them with its own readings.
        """
        connections = self.connection_counts()
        jobs: dict[str, Any] = {}
        with self._lock:
            for job in self._jobs.values():
                if job.token != token:
                    continue
                planned = {"queued": job.created, "processing": job.starts}
                if math.isfinite(job.ends):
                    planned[job.outcome] = job.ends
                jobs[job.job_id] = {
                    "polls": self._polls[job.job_id],
                    "transitions": planned,
                }
            return {
                "monotonic": time.monotonic(),
                "connections_accepted": connections.get("api", 0),
                "image_connections_accepted": connections.get("images", 0),
                "requests": len(self._requests),
                "image_requests": len(self._image_requests),
                "jobs": jobs,
            }

    def polls(self, job_id: str) -> int:
        """How many ``GET /v1/jobs/<job_id>`` requests arrived (faulted included)."""
        with self._lock:
            return self._polls[job_id]

    # WSGI apps

    def api_app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The WSGI app of the API origin."""
        arrived = time.monotonic()
        request = Request(environ)
        if request.path == STATS_PATH and request.method == "GET":
            return self._get_stats(request)(environ, start_response)
        job_match = _JOB_PATH.match(request.path)
        job_id = job_match.group(1) if job_match and request.method == "GET" else None
        is_post = request.method == "POST" and request.path == "/v1/generate"
        fault: Fault | None = None
        if job_id is not None:
            with self._lock:
                self._polls[job_id] += 1
        if job_id is not None or is_post:
            fault = self.faults.take("api", job_id)
        created: list[str] = []

        def real() -> Response:
            if job_id is not None:
                return self._get_job(request, job_id)
            if is_post:
                return self._post_generate(request, created)
            return _error(404, "Not found.")

        def log(status_code: int | None) -> None:
            record = RequestRecord(
                time=arrived,
                method=request.method,
                path=request.path,
                job_id=job_id or (created[0] if created else None),
                status_code=status_code,
                fault=fault.name if fault else None,
            )
            with self._lock:
                self._requests.append(record)

        return self._answer(fault, environ, start_response, real, log)

    def image_app(
        self, environ: dict[str, Any], start_response: Any
    ) -> Iterable[bytes]:
        """The WSGI app of the image origin: ``GET /out/<job_id>.jpg``, no token."""
        arrived = time.monotonic()
        request = Request(environ)
        match = _IMAGE_PATH.match(request.path)
        job_id = match.group(1) if match else None
        fault = self.faults.take("image", job_id)

        def log(status_code: int | None) -> None:
            record = ImageRequestRecord(
                time=arrived,
                path=request.path,
                authorization=request.headers.get("Authorization"),
                status_code=status_code,
                fault=fault.name if fault else None,
            )
            with self._lock:
                self._image_requests.append(record)

        return self._answer(
            fault, environ, start_response, lambda: self._image(request, job_id), log
        )

    def _answer(
        self,
        fault: Fault | None,
        environ: dict[str, Any],
        start_response: Any,
        real: Callable[[], Response],
        log: Callable[[int | None], None],
    ) -> Iterable[bytes]:
        if fault is None:
            response = real()
        elif fault.drops_connection:
            # Logged first: a hanging request is visible while it hangs.
            log(None)
            return self.faults.respond(fault, environ, real)(environ, start_response)
        else:
            response = self.faults.respond(fault, environ, real)
        log(response.status_code)
        return response(environ, start_response)

    # Internals

    def _account(self, token: str) -> _Account:
        try:
            return self._accounts[token]
        except KeyError:
            raise KeyError("unknown token") from None

    def _outcome(self, prompt: str) -> str:
        if "[fail]" in prompt:
            return "failed"
        if "[moderate]" in prompt or any(p.search(prompt) for p in self._moderation):
            return "moderated"
        return "complete"

    def _settle_account(self, account: _Account, now: float) -> None:
        """Charge every job of ``account`` that has become complete (lock held)."""
        if not account.unsettled:
            return
        pending = []
        for job in account.unsettled:
            if now >= job.ends:
                account.balance -= PRICES[job.mode]
            else:
                pending.append(job)
        account.unsettled = pending

    def _body(self, job: _Job, status: str) -> dict[str, Any]:
        complete = status == "complete"
        completed_at = None
        if complete:
            elapsed = timedelta(seconds=job.ends - job.created)
            completed_at = _iso(job.created_wall + elapsed)
        return {
            "job_id": job.job_id,
            "status": status,
            "image_url": (
                f"{self.image_base_url}/out/{job.job_id}.jpg" if complete else None
            ),
            "mode": job.mode,
            "prompt": job.prompt,
            "cost": f"${PRICES[job.mode]}" if complete else None,
            "error": FAILED_ERROR if status == "failed" else None,
            "created_at": _iso(job.created_wall),
            "completed_at": completed_at,
        }

    def _token(self, request: Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token or " " in token:
            raise ApiError(401, "Missing or malformed Authorization header.")
        with self._lock:
            if token not in self._accounts:
                raise ApiError(401, "Invalid API token.")
        return token

    def _get_stats(self, request: Request) -> Response:
        try:
            return _json(self.stats(self._token(request)))
        except ApiError as refused:
            return _error(refused.status_code, refused.message)

    def _get_job(self, request: Request, job_id: str) -> Response:
        try:
            return _json(self.job_body(job_id, self._token(request)))
        except ApiError as refused:
            return _error(refused.status_code, refused.message)

    def _post_generate(self, request: Request, created: list[str]) -> Response:
        try:
            token = self._token(request)
            try:
                payload = json.loads(request.get_data())
            except ValueError:
                raise ApiError(400, "The body must be a JSON object.") from None
            if not isinstance(payload, dict):
                raise ApiError(400, "The body must be a JSON object.")
            job_id = self.create_job(
                payload.get("prompt"), payload.get("mode", "1k"), token
            )
            created.append(job_id)
            return _json(self.job_body(job_id, token))
        except ApiError as refused:
            return _error(refused.status_code, refused.message)

    def _image(self, request: Request, job_id: str | None) -> Response:
        with self._lock:
            job = self._jobs.get(job_id or "")
            now = time.monotonic()
            if job is not None:
                self._settle_account(self._accounts[job.token], now)
            ready = job is not None and job.status(now) == "complete"
        if request.method not in ("GET", "HEAD") or job is None or not ready:
            return Response("Not Found", status=404, content_type="text/plain")
        response = Response(
            render_jpeg(job.prompt, job.mode), content_type="image/jpeg"
        )
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response
