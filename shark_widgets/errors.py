"""The errors ``shark_widgets`` raises.

Every error of the service or of its contract derives from `SharkAPIError`, so
``except SharkAPIError`` catches all of them::

    SharkAPIError
    ├── AuthenticationError     401: the token is missing, malformed or unknown
    ├── JobNotFoundError        404: no such job on this account
    ├── RequestRejectedError    another 4xx (400, 402, 429 on submit, ...)
    ├── ServiceUnavailableError 429 or 5xx while polling, or no answer at all
    ├── ContractError           an answer that is not what the contract promises
    ├── ImageExpiredError       the image host refused the link (403)
    ├── PollingTimeout          the overall deadline passed (also a TimeoutError)
    ├── PollingCrashed          the polling code itself raised (a bug: see the log)
    └── JobError                the job ended without an image
        ├── JobFailedError      status ``failed``
        └── JobModeratedError   status ``moderated``

Errors carry the job id when there is one (``error.job_id``), and never the
token. Invalid arguments (a job id that cannot be a job id, an ``http://`` URL
to a remote host) raise the built-in `ValueError` before any request is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Job


class SharkAPIError(Exception):
    """Base class of every error about the service or its answers."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class AuthenticationError(SharkAPIError):
    """The service answered 401: the token is missing, malformed or unknown.

    Set ``SHARKAPI_TOKEN`` or pass ``token=`` to `SharkClient`.
    """


class JobNotFoundError(SharkAPIError):
    """The service answered 404: the job does not exist on this account."""


class RequestRejectedError(SharkAPIError):
    """The service refused a request (400, 402, 429 on submit, other 4xx)."""

    def __init__(
        self, message: str, *, status_code: int, job_id: str | None = None
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.status_code = status_code


class ServiceUnavailableError(SharkAPIError):
    """The service did not answer usefully for now: 429, 5xx, or no answer.

    Polling treats it as transient and retries with backoff. ``retry_after``
    holds the seconds the service asked to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.status_code = status_code
        self.retry_after = retry_after


class ContractError(SharkAPIError):
    """The service answered something the contract does not allow.

    An HTML page where JSON was promised, a body missing ``status``, or a
    ``complete`` job without an ``image_url``.
    """


class ImageExpiredError(SharkAPIError):
    """The image host refused the image link (403), even after a fresh read."""


class PollingTimeout(SharkAPIError, TimeoutError):
    """The overall deadline (``timeout=``) passed before the job ended.

    The job may yet finish on the service: read it again later.
    """


class PollingCrashed(SharkAPIError):
    """The polling code itself raised; the traceback is in the log."""


class JobError(SharkAPIError):
    """The job reached a terminal state without an image. ``job`` holds it."""

    def __init__(self, message: str, *, job: Job) -> None:
        super().__init__(message, job_id=job.job_id)
        self.job = job


class JobFailedError(JobError):
    """The job ended ``failed``; the service's reason is the message."""


class JobModeratedError(JobError):
    """The job ended ``moderated``: content moderation blocked it."""
