"""`SharkClient`: the HTTP side of SharkAPI, over one pooled `requests.Session`."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.exceptions import HTTPError, InvalidHeader
from urllib3.util.retry import Retry

from .errors import (
    AuthenticationError,
    ContractError,
    ImageExpiredError,
    JobNotFoundError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from .models import Job, shorten, validate_job_id

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.sharkapi.dev"
DEFAULT_TIMEOUT = (3.05, 10.0)
MODES = ("1k", "2k")
_MAX_PROMPT = 2000


class SharkClient:
    """A client of SharkAPI: submit prompts, read jobs, wait for them.

    The token comes from ``token=`` or the ``SHARKAPI_TOKEN`` environment
    variable; the base URL from ``base_url=``, ``SHARKAPI_BASE_URL`` or the
    public service. Plain ``http://`` is accepted for loopback hosts only, so a
    token never travels in clear text. Every request has connect and read
    timeouts, and connections are pooled and kept alive.

    The token is sent to the API origin only: never to the image host, never
    in a repr, a log line or an error message.

    Example:
        >>> client = SharkClient()                       # doctest: +SKIP
        >>> job = client.generate("a shark in neon kelp") # doctest: +SKIP
        >>> client.wait(job.job_id).image_url             # doctest: +SKIP
        'https://cdn.sharkapi.dev/out/job_8f2a9d3c.jpg'
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        pool_size: int = 10,
    ) -> None:
        self._token = _clean_token(token or os.environ.get("SHARKAPI_TOKEN"))
        self._token_source = "token=" if token else "SHARKAPI_TOKEN"
        base = base_url or os.environ.get("SHARKAPI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = check_url(base.rstrip("/"), what="base URL")
        self.timeout = timeout
        self._session = _pooled_session(pool_size)
        self._image_session = _pooled_session(pool_size)
        self._polls = _poll_pool(self._session, self.base_url, pool_size)

    def __repr__(self) -> str:
        token = "set" if self._token else "missing"
        return f"SharkClient(base_url={self.base_url!r}, token={token})"

    def __enter__(self) -> SharkClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
        self._image_session.close()
        if self._polls is not None:
            self._polls.close()

    def get_job(self, job_id: str) -> Job:
        """Read a job once (``GET /v1/jobs/:id``).

        Raises `AuthenticationError` (401), `JobNotFoundError` (404),
        `ServiceUnavailableError` (429, 5xx, no answer) or `ContractError`.
        """
        job_id = validate_job_id(job_id)
        data = self._request("GET", f"/v1/jobs/{job_id}", job_id=job_id)
        job = Job.from_dict(data)
        if job.job_id != job_id:
            raise ContractError(
                f"asked for job {job_id}, the service answered {shorten(job.job_id)}",
                job_id=job_id,
            )
        return job

    def generate(self, prompt: str, mode: str = "1k") -> Job:
        """Submit a prompt (``POST /v1/generate``) and return the new job.

        A submission is never retried: it may have reached the service, and a
        second one would be a second paid job.
        """
        validate_submission(prompt, mode)
        data = self._request(
            "POST", "/v1/generate", body={"prompt": prompt, "mode": mode}
        )
        if isinstance(data, dict):
            data = {"status": "queued", "prompt": prompt, "mode": mode, **data}
        job = Job.from_dict(data)
        validate_job_id(job.job_id)
        logger.debug("submitted job %s (%s)", job.job_id, mode)
        return job

    def wait(
        self,
        job_id: str,
        interval: float = 2.0,
        timeout: float | None = None,
        *,
        sleep: Callable[[float], Any] | None = None,
    ) -> Job:
        """Poll a job until it ends and return it if it is complete.

        Polls every ``interval`` seconds, retrying transient faults with
        backoff, like a `~shark_widgets.JobWidget` does. Raises
        `JobFailedError` or `JobModeratedError` for those endings,
        `TimeoutError` after ``timeout`` seconds.
        """
        from .polling import JobWatch

        watch = JobWatch(self, job_id, interval=interval, timeout=timeout)
        watch.run(sleep=sleep)
        return watch.result()

    def fetch_image(self, url: str) -> bytes:
        """Download an image without the token; `ImageExpiredError` on 403."""
        url = check_url(url, what="image URL")
        try:
            response = self._image_session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"could not download the image: {type(exc).__name__}"
            ) from exc
        if response.status_code == 403:
            raise ImageExpiredError("the image link has expired (403)")
        if response.status_code != 200:
            raise _unavailable_or_rejected(_Answer.of(response), "image host")
        return response.content

    def _request(
        self, method: str, path: str, *, job_id: str | None = None, body: object = None
    ) -> object:
        if not self._token:
            raise AuthenticationError(
                "no token: set SHARKAPI_TOKEN or pass token= to SharkClient"
            )
        if method == "GET" and self._polls is not None:
            answer = self._poll(path, job_id)
        else:
            answer = self._send(method, path, job_id, body)
        logger.debug("%s %s -> %s", method, path, answer.status)
        if answer.status == 401:
            raise AuthenticationError(
                f"the service refused the token (401): check {self._token_source}",
                job_id=job_id,
            )
        if answer.status == 404 and job_id is not None:
            raise JobNotFoundError(
                f"job {job_id} was not found on this account (404)", job_id=job_id
            )
        if answer.status != 200:
            raise _unavailable_or_rejected(answer, "service", job_id=job_id)
        return _json_body(answer, job_id)

    def _poll(self, path: str, job_id: str | None) -> _Answer:
        # A poll is the same small GET every interval. Sent straight over
        # urllib3's pool it costs about half the CPU of a full requests round
        # (hooks, cookie jar, response wrapping). A redirect is handed to
        # requests, which follows it and drops the token off-origin.
        assert self._polls is not None
        try:
            response = self._polls.urlopen(
                "GET",
                path,
                headers={"Authorization": f"Bearer {self._token}"},
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=urllib3.Timeout(*self.timeout),
            )
            if response.get_redirect_location():
                return self._follow(response, path)
            try:
                body = response.read()
            finally:
                response.release_conn()
        except (HTTPError, requests.RequestException) as exc:
            raise ServiceUnavailableError(
                f"no answer from {self.base_url}: {_no_answer(exc)}", job_id=job_id
            ) from exc
        return _Answer(response.status, response.reason, response.headers, body)

    def _follow(self, redirect: urllib3.BaseHTTPResponse, path: str) -> _Answer:
        request = self._session.prepare_request(
            requests.Request("GET", self.base_url + path, auth=_Bearer(self._token))
        )
        adapter = self._session.get_adapter(request.url)
        final = adapter.build_response(request, redirect)
        hops = self._session.resolve_redirects(final, request, timeout=self.timeout)
        for hop in hops:
            final = hop
        return _Answer.of(final)

    def _send(
        self, method: str, path: str, job_id: str | None, body: object
    ) -> _Answer:
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                json=body,
                auth=_Bearer(self._token),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"no answer from {self.base_url}: {_no_answer(exc)}", job_id=job_id
            ) from exc
        return _Answer.of(response)


_shared: dict[tuple[str | None, str | None], SharkClient] = {}


def default_client() -> SharkClient:
    """The client widgets use when given none, shared while the environment holds.

    One client per ``SHARKAPI_TOKEN`` / ``SHARKAPI_BASE_URL`` pair, so every
    widget of a session polls over the same pooled connections.
    """
    key = (os.environ.get("SHARKAPI_TOKEN"), os.environ.get("SHARKAPI_BASE_URL"))
    client = _shared.get(key)
    if client is None:
        client = _shared.setdefault(key, SharkClient())
    return client


def validate_submission(prompt: object, mode: object) -> None:
    """Raise `ValueError` for a prompt or mode the service would refuse.

    A prompt is 1 to 2000 characters that are not all blank; a mode is
    ``"1k"`` or ``"2k"``.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty")
    if len(prompt) > _MAX_PROMPT:
        raise ValueError(f"the prompt is over {_MAX_PROMPT} characters")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


def check_url(url: str, *, what: str) -> str:
    """Return ``url`` if it is ``https://``, or ``http://`` on a loopback host.

    The host must be a host name or an IP address, and the URL printable
    ASCII without spaces: anything else would fail deep in the HTTP stack
    with an error that is neither clear nor safe to retry.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and _is_loopback(host)
        )
        valid = parts.port is None or parts.port > 0
    except ValueError:
        secure = valid = False
    if secure and valid and _is_host(host) and all("!" <= c <= "~" for c in url):
        return url
    raise ValueError(
        f"refusing the {what} {shorten(url, 80)!r}: use https:// and a valid host"
        " (plain http:// is allowed for localhost only, so a token never travels"
        " in clear text)"
    )


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return 0 < len(host) <= 253 and all(map(_HOST_LABEL.fullmatch, labels))
    return True


def _clean_token(token: str | None) -> str | None:
    """The token without surrounding whitespace, or None if there is none.

    A token with a line break, a control or a non-ASCII character cannot go
    in a header: the HTTP stack would reject it with an error quoting the
    header, token included. It is refused here, without quoting it.
    """
    token = (token or "").strip()
    if not token:
        return None
    if any(not " " <= char <= "~" for char in token):
        raise ValueError(
            "the token has a control, line-break or non-ASCII character: check"
            " SHARKAPI_TOKEN or token= (the token is not shown here)"
        )
    return token


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Bearer(requests.auth.AuthBase):
    """Adds the token to one request (requests drops it on a cross-host redirect)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer(<hidden>)"


def _poll_pool(
    session: requests.Session, base_url: str, size: int
) -> urllib3.HTTPConnectionPool | None:
    """A urllib3 pool for polls, with the TLS and proxy settings requests would use.

    None when a proxy applies to the API: then every request goes through
    requests, which knows how to speak through it.
    """
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    if requests.utils.select_proxy(base_url, settings["proxies"]):
        return None
    verify = settings["verify"]
    if verify is False:
        tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"}
    else:
        bundle = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
        key = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
        tls = {"cert_reqs": "CERT_REQUIRED", key: bundle}
    if not base_url.startswith("https:"):
        tls = {}
    return urllib3.connection_from_url(base_url, maxsize=size, block=False, **tls)


def _no_answer(exc: Exception) -> str:
    """Why a request got no answer, in words."""
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, requests.ReadTimeout)):
        return "nothing within the read timeout"
    if isinstance(exc, (urllib3.exceptions.ConnectTimeoutError, requests.Timeout)):
        return "could not connect in time"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "could not connect (refused or unreachable)"
    if isinstance(exc, (urllib3.exceptions.ProtocolError, requests.ConnectionError)):
        return "the connection was dropped"
    return type(exc).__name__


class _Answer(NamedTuple):
    """What the service answered, whichever HTTP stack carried it."""

    status: int
    reason: str | None
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def of(cls, response: requests.Response) -> _Answer:
        return cls(
            response.status_code, response.reason, response.headers, response.content
        )

    def json(self) -> object:
        return json.loads(self.body)


def _pooled_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _json_body(response: _Answer, job_id: str | None) -> object:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type:
        raise ContractError(
            f"the service answered {shorten(content_type or 'no content type')}"
            " where JSON was expected",
            job_id=job_id,
        )
    try:
        return response.json()
    except ValueError as exc:
        raise ContractError(
            f"the service answered malformed JSON ({len(response.body)} bytes)",
            job_id=job_id,
        ) from exc


def _unavailable_or_rejected(
    response: _Answer, origin: str, *, job_id: str | None = None
) -> Exception:
    code = response.status
    if code == 429 or code >= 500:
        return ServiceUnavailableError(
            f"the {origin} answered {code} {response.reason or ''}".rstrip(),
            status_code=code,
            retry_after=_retry_after(response),
            job_id=job_id,
        )
    return RequestRejectedError(
        f"the {origin} refused the request ({code}): {_reason(response)}",
        status_code=code,
        job_id=job_id,
    )


def _retry_after(response: _Answer) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value))
    except InvalidHeader:
        logger.info("ignoring a Retry-After header that is not a delay: %r", value)
        return None


def _reason(response: _Answer) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason or "no reason given"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return shorten(data["error"], 200)
    return response.reason or "no reason given"
