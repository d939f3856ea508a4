"""The simulator's two HTTP servers (API and images) and their lifecycle.

Werkzeug's own request handler closes every connection after one response;
the handler here keeps HTTP/1.1 connections alive instead, so that a client
that pools its connections can be seen doing so.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .faults import Fault
from .service import ImageRequestRecord, RequestRecord, Service

if TYPE_CHECKING:
    from shark_widgets.client import SharkClient

__all__ = ["SharkSimulator"]

logger = logging.getLogger(__name__)

_MAX_BODY = 1 << 20
_WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _Connections:
    """The connections a server accepted, and those still open."""

    def __init__(self) -> None:
        self.accepted = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self._open.add(sock)

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def close_all(self) -> None:
        """Wake idle keep-alive handlers so that their threads end."""
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _KeepAliveHandler(WSGIRequestHandler):
    """Runs the WSGI app and answers in one piece, keeping the connection open."""

    protocol_version = "HTTP/1.1"
    # Without this, header and body sends on a kept-alive connection meet the
    # client's delayed ACK and every reply stalls for about 40 ms.
    disable_nagle_algorithm = True
    connections: _Connections

    def setup(self) -> None:
        super().setup()
        self.connections.opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.connections.closed(self.connection)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        self._buffer_body(environ)
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return self._refuse_write

        try:
            result = self.server.app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            logger.exception(
                "error answering %s %s", self.command, environ["PATH_INFO"]
            )
            self.close_connection = True
            started = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            payload = b"Internal Server Error"
        if self.connection.fileno() < 0:
            self.close_connection = True
            return
        self._answer(started[0], started[1], payload)

    def _answer(
        self, status: str, headers: list[tuple[str, str]], payload: bytes
    ) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        head = self.command == "HEAD"
        has_length = False
        for key, value in headers:
            if key.lower() == "content-length":
                if not head:
                    continue
                has_length = True
            self.send_header(key, value)
        if not has_length:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head and payload:
            self.wfile.write(payload)

    def _buffer_body(self, environ: dict[str, Any]) -> None:
        """Read the whole request body now, so the next request starts clean."""
        if environ.pop("wsgi.input_terminated", False):
            body = environ["wsgi.input"].read(_MAX_BODY)
            self.close_connection = True
        else:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if 0 <= length <= _MAX_BODY:
                body = self.rfile.read(length) if length else b""
            else:
                body = b""
                self.close_connection = True
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

    @staticmethod
    def _refuse_write(data: bytes) -> None:
        raise NotImplementedError("the write() callable is not supported")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug('"%s" %s', self.requestline, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug(message, *args)


class _Server:
    """One threaded werkzeug server on its own daemon thread."""

    def __init__(
        self,
        app: _WsgiApp,
        host: str,
        port: int,
        name: str,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connections = _Connections()
        handler = type(
            "_Handler", (_KeepAliveHandler,), {"connections": self.connections}
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Binding here rather than in werkzeug turns a busy port into an
        # OSError; werkzeug would print and call sys.exit instead.
        with socket.create_server((host, port), family=family) as listener:
            self.server: BaseWSGIServer = make_server(
                host,
                listener.getsockname()[1],
                app,
                threaded=True,
                request_handler=handler,
                fd=listener.fileno(),
            )
        if tls is not None:
            # The handshake happens on the connection's own thread at its
            # first read, not in the accepting thread, so clients that open a
            # connection per request do not queue behind each other.
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.server.ssl_context = tls
        self.port: int = self.server.port
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=name,
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.connections.close_all()
        self.thread.join(timeout=5)


def _origin(host: str, port: int, scheme: str = "http") -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class SharkSimulator:
    """A local SharkAPI: real HTTP on two ports, a clock, wallets and faults.

    Example::

        with SharkSimulator(time_scale=0.1) as sim:
            job_id = sim.create_job("a hammerhead at dusk", mode="2k")
            requests.get(f"{sim.base_url}/v1/jobs/{job_id}",
                         headers={"Authorization": f"Bearer {sim.token}"})
            sim.inject(Fault.status(429, {"Retry-After": "1"}), job_id=job_id)

    ``time_scale`` multiplies every drawn duration (at 1.0 a job takes a few
    to about 15 seconds). The default account, ``sim.token``, holds $10.00.
    A stopped simulator cannot be started again. With ``tls`` (a server
    `ssl.SSLContext`), the API speaks HTTPS, as the real service does; the
    client must then trust its certificate (``REQUESTS_CA_BUNDLE``).
    """

    def __init__(
        self,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        image_port: int = 0,
        moderation_words: Iterable[str] = (),
        seed: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._service = Service(time_scale, moderation_words, seed)
        self._tls = tls
        self._token = self._service.new_account("10.00")
        self._host = host
        self._ports = (port, image_port)
        self._api: _Server | None = None
        self._images: _Server | None = None
        self._stopped = False
        self._lifecycle = threading.Lock()

    # Lifecycle

    def start(self) -> SharkSimulator:
        """Bind both ports and serve in background threads; return self."""
        with self._lifecycle:
            if self._stopped:
                raise RuntimeError("a stopped SharkSimulator cannot be started again")
            if self._api is not None:
                return self
            images = _Server(
                self._service.image_app, self._host, self._ports[1], "shark-sim-images"
            )
            try:
                api = _Server(
                    self._service.api_app,
                    self._host,
                    self._ports[0],
                    "shark-sim-api",
                    tls=self._tls,
                )
            except BaseException:
                images.stop()
                raise
            self._service.image_base_url = _origin(self._host, images.port)
            self._api, self._images = api, images
            self._service.connection_counts = lambda: {
                "api": api.connections.accepted,
                "images": images.connections.accepted,
            }
        logger.info("SharkAPI simulator serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Shut both servers down and join their threads; safe to call twice."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            self._service.faults.stop_event.set()
            for server in (self._api, self._images):
                if server is not None:
                    server.stop()
        logger.info("SharkAPI simulator stopped")

    def __enter__(self) -> SharkSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses and accounts

    @property
    def base_url(self) -> str:
        """The API origin, e.g. ``http://127.0.0.1:8000``."""
        scheme = "https" if self._tls else "http"
        return _origin(self._host, self._running(self._api).port, scheme)

    @property
    def image_base_url(self) -> str:
        """The image origin, a different port from the API's."""
        return _origin(self._host, self._running(self._images).port)

    @property
    def token(self) -> str:
        """The default account's token (opened with $10.00)."""
        return self._token

    def new_account(
        self, balance: str | Decimal = "10.00", token: str | None = None
    ) -> str:
        """Open another account holding ``balance`` dollars; return its token.

        ``token`` picks the token instead of drawing one, e.g. a canary that a
        test then searches every artifact for; `ValueError` if it is taken.
        """
        return self._service.new_account(balance, token)

    def balance(self, token: str) -> Decimal:
        """The current wallet balance of ``token``'s account."""
        return self._service.balance(token)

    def client(self, token: str | None = None) -> SharkClient:
        """A :class:`~shark_widgets.client.SharkClient` pointed at this simulator."""
        from shark_widgets.client import SharkClient

        return SharkClient(token=token or self.token, base_url=self.base_url)

    # Jobs

    def create_job(
        self,
        prompt: str,
        mode: str = "1k",
        token: str | None = None,
        queued: float | None = None,
        processing: float | None = None,
    ) -> str:
        """Create a job without HTTP, by the rules of ``POST /v1/generate``.

        ``queued`` and ``processing`` override the drawn durations in seconds
        of real time (not scaled); ``processing=math.inf`` never finishes.
        Raises :class:`~shark_widgets.simulator.service.ApiError` (a
        ValueError carrying ``status_code``) where the API would refuse.
        """
        return self._service.create_job(
            prompt, mode, token or self._token, queued, processing
        )

    def transitions(self, job_id: str) -> dict[str, float]:
        """Planned ``time.monotonic()`` at which the job enters each status.

        All planned entries are given, reached or not (the timeline is fixed at
        creation); a job processing forever has no terminal entry.
        """
        return self._service.transitions(job_id)

    # Observation

    @property
    def connections_accepted(self) -> int:
        """TCP connections the API server has accepted so far (0 before start)."""
        return self._api.connections.accepted if self._api else 0

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request so far, oldest first (a copy)."""
        return self._service.requests

    def polls(self, job_id: str) -> int:
        """How many ``GET /v1/jobs/<job_id>`` requests were received."""
        return self._service.polls(job_id)

    @property
    def image_requests(self) -> list[ImageRequestRecord]:
        """Every image request so far, oldest first (a copy)."""
        return self._service.image_requests

    # Faults

    def inject(
        self,
        fault: Fault,
        *,
        job_id: str | None = None,
        times: int | None = 1,
        after: int = 0,
        target: str = "api",
    ) -> None:
        """Give ``fault`` to the next ``times`` matching requests (None: forever).

        The first ``after`` matching requests pass untouched. With target
        ``"api"`` polls and ``POST /v1/generate`` match, or only the polls of
        ``job_id`` if given; with ``"image"`` image requests match (only
        ``job_id``'s image if given).
        """
        self._service.faults.inject(
            fault, job_id=job_id, times=times, after=after, target=target
        )

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._service.faults.clear()

    def _running(self, server: _Server | None) -> _Server:
        if server is None:
            raise RuntimeError("the simulator was never started; call start()")
        return server
