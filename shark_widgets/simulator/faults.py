"""Fault injection: the ways a network, a proxy or the service can misbehave.

A :class:`Fault` says what to answer instead of (or on top of) the real
response; :class:`FaultBook` holds the injected faults and decides which
request gets which. Faults that transform the real body (``truncated_json``,
``missing_fields``, ``override``) let the request run for real first; all the
others answer in place of the service, so a faulted ``POST`` creates no job.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from werkzeug.wrappers import Response

__all__ = ["Fault", "FaultBook", "drop_connection"]

_BODY_FAULTS = frozenset({"truncated_json", "missing_fields", "override"})

_PORTAL_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    "<body><h1>Welcome</h1><p>Please accept the terms of use to continue."
    "</p></body></html>"
)


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour; build it with the classmethod constructors."""

    kind: str
    status_code: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    content_type: str = "text/html"
    fields: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    seconds: float = 0.0

    @property
    def name(self) -> str:
        """A short label for the request log, e.g. ``status_429`` or ``reset``."""
        return f"status_{self.status_code}" if self.kind == "status" else self.kind

    @property
    def drops_connection(self) -> bool:
        """Whether the fault ends the connection without any response."""
        return self.kind in ("reset", "hang")

    @property
    def needs_real_response(self) -> bool:
        """Whether the request must run for real before the fault applies."""
        return self.kind in _BODY_FAULTS

    @classmethod
    def status(
        cls,
        code: int,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        content_type: str = "text/html",
    ) -> Fault:
        """Answer with status ``code`` (e.g. 429 with ``Retry-After``, 503, 403)."""
        if body is None:
            body = f"<html><body><h1>{code} {_phrase(code)}</h1></body></html>"
        return cls(
            kind="status",
            status_code=code,
            headers=tuple((headers or {}).items()),
            body=body,
            content_type=content_type,
        )

    @classmethod
    def html_200(cls) -> Fault:
        """Answer 200 with an HTML page, as a captive portal or proxy would."""
        return cls(kind="html_200", body=_PORTAL_PAGE)

    @classmethod
    def truncated_json(cls) -> Fault:
        """Answer 200 ``application/json`` with the real body cut in half."""
        return cls(kind="truncated_json", content_type="application/json")

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 ``application/json`` with a body that is not JSON."""
        return cls(
            kind="malformed_json",
            body='{"job_id": \x00garbage',
            content_type="application/json",
        )

    @classmethod
    def missing_fields(cls, *names: str) -> Fault:
        """Answer the real body without the keys ``names`` (default: status)."""
        return cls(kind="missing_fields", fields=names or ("status",))

    @classmethod
    def override(cls, **fields: Any) -> Fault:
        """Answer the real body with ``fields`` replaced or added."""
        return cls(kind="override", overrides=tuple(fields.items()))

    @classmethod
    def reset(cls) -> Fault:
        """Abort the TCP connection with an RST and no response."""
        return cls(kind="reset")

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Accept the request, never answer, drop the connection after ``seconds``."""
        return cls(kind="hang", seconds=seconds)


@dataclass
class _Rule:
    fault: Fault
    target: str
    job_id: str | None
    times: int | None
    after: int

    def matches(self, target: str, job_id: str | None) -> bool:
        return self.target == target and self.job_id in (None, job_id)


@dataclass
class FaultBook:
    """The injected faults, consumed in order by matching requests (thread-safe)."""

    stop_event: threading.Event = field(default_factory=threading.Event)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(
        self,
        fault: Fault,
        *,
        job_id: str | None = None,
        times: int | None = 1,
        after: int = 0,
        target: str = "api",
    ) -> None:
        """Give ``fault`` to the next ``times`` matching requests after ``after``."""
        if target not in ("api", "image"):
            raise ValueError(f"unknown fault target {target!r}")
        if (times is not None and times < 1) or after < 0:
            raise ValueError("times must be >= 1 (or None) and after >= 0")
        with self._lock:
            self._rules.append(_Rule(fault, target, job_id, times, after))

    def clear(self) -> None:
        """Forget every injected fault."""
        with self._lock:
            self._rules.clear()

    def take(self, target: str, job_id: str | None) -> Fault | None:
        """The fault for this request, if any; every matching rule counts it.

        A rule still skipping (``after``) counts the request as skipped even
        when another rule fires on it; only the first rule ready to fire does.
        """
        chosen: Fault | None = None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(target, job_id):
                    continue
                if rule.after > 0:
                    rule.after -= 1
                elif chosen is None:
                    chosen = rule.fault
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
        return chosen

    def respond(
        self, fault: Fault, environ: dict[str, Any], real: Callable[[], Response]
    ) -> Response:
        """The response ``fault`` gives; ``real`` produces the service's own."""
        if fault.kind == "reset":
            drop_connection(environ, reset=True)
            return Response(b"")
        if fault.kind == "hang":
            self.stop_event.wait(fault.seconds)
            drop_connection(environ, reset=False)
            return Response(b"")
        if not fault.needs_real_response:
            response = Response(
                fault.body, status=fault.status_code, content_type=fault.content_type
            )
            for key, value in fault.headers:
                response.headers[key] = value
            return response
        return _transform(fault, real())


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _transform(fault: Fault, response: Response) -> Response:
    data = response.get_data()
    if fault.kind == "truncated_json":
        return Response(data[: len(data) // 2], content_type="application/json")
    body = json.loads(data)
    if isinstance(body, dict):
        if fault.kind == "missing_fields":
            for name in fault.fields:
                body.pop(name, None)
        else:
            body.update(fault.overrides)
    return Response(
        json.dumps(body), status=response.status_code, content_type="application/json"
    )


def drop_connection(environ: Mapping[str, Any], *, reset: bool) -> None:
    """Close the request's socket at once: with an RST if ``reset``, else a FIN.

    The socket object is detached before its descriptor is closed, so the
    server's own later writes fail on it instead of reaching a reused one.
    """
    sock = environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:
        return
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    os.close(sock.detach())
