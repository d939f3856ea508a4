"""`SharkClient`: the HTTP side of SharkAPI, over one pooled `requests.Session`."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
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
_PREPARED_MAX = 4096


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
        _read_environment_once(self._session, self.base_url)
        self._prepared: dict[str, requests.PreparedRequest] = {}
        self._image_session = _pooled_session(pool_size)

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
            raise _unavailable_or_rejected(response, "image host")
        return response.content

    def _request(
        self, method: str, path: str, *, job_id: str | None = None, body: object = None
    ) -> object:
        if not self._token:
            raise AuthenticationError(
                "no token: set SHARKAPI_TOKEN or pass token= to SharkClient"
            )
        url = self.base_url + path
        try:
            if method == "GET" and not self._session.cookies:
                response = self._session.send(
                    self._prepared_get(url), timeout=self.timeout
                )
            else:
                response = self._session.request(
                    method,
                    url,
                    json=body,
                    auth=_Bearer(self._token),
                    timeout=self.timeout,
                )
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"no answer from {self.base_url}: {type(exc).__name__}", job_id=job_id
            ) from exc
        logger.debug("%s %s -> %s", method, path, response.status_code)
        if response.status_code == 401:
            raise AuthenticationError(
                f"the service refused the token (401): check {self._token_source}",
                job_id=job_id,
            )
        if response.status_code == 404 and job_id is not None:
            raise JobNotFoundError(
                f"job {job_id} was not found on this account (404)", job_id=job_id
            )
        if response.status_code != 200:
            raise _unavailable_or_rejected(response, "service", job_id=job_id)
        return _json_body(response, job_id)

    def _prepared_get(self, url: str) -> requests.PreparedRequest:
        # A poll repeats the same GET every interval: preparing it once (URL
        # parsing, header and auth merging) takes about a third off its CPU.
        prepared = self._prepared.get(url)
        if prepared is None:
            if len(self._prepared) >= _PREPARED_MAX:
                self._prepared.clear()
            prepared = self._session.prepare_request(
                requests.Request("GET", url, auth=_Bearer(self._token))
            )
            self._prepared[url] = prepared
        return prepared.copy()


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


def _read_environment_once(session: requests.Session, url: str) -> None:
    """Take proxies and CA bundle from the environment now, not on every request.

    requests reads them again for each request (a walk over ``os.environ``, a
    quarter of a poll's CPU); the client reads them when it is made.
    """
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False


def _pooled_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _json_body(response: requests.Response, job_id: str | None) -> object:
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
            f"the service answered malformed JSON ({len(response.content)} bytes)",
            job_id=job_id,
        ) from exc


def _unavailable_or_rejected(
    response: requests.Response, origin: str, *, job_id: str | None = None
) -> Exception:
    code = response.status_code
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


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value))
    except InvalidHeader:
        logger.info("ignoring a Retry-After header that is not a delay: %r", value)
        return None


def _reason(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason or "no reason given"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return shorten(data["error"], 200)
    return response.reason or "no reason given"
