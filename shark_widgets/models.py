"""The records the service sends back, parsed: `Job` and `JobStatus`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from .errors import ContractError

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAX_SHOWN = 40


class JobStatus(str, Enum):
    """A job's status; equal to its string (``JobStatus.COMPLETE == "complete"``).

    A status the contract does not list (say a future ``"paused"``) is kept as
    it is rather than rejected: ``JobStatus("paused")`` is a status that is
    neither terminal nor known.
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"
    MODERATED = "moderated"

    @classmethod
    def _missing_(cls, value: object) -> JobStatus | None:
        if not isinstance(value, str) or not value:
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member

    @property
    def is_terminal(self) -> bool:
        """True for ``complete``, ``failed`` and ``moderated``: polling ends."""
        return self in _TERMINAL

    @property
    def is_known(self) -> bool:
        """True for the five statuses the contract lists."""
        return self.value in _KNOWN

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.MODERATED})
_KNOWN = frozenset(status.value for status in list(JobStatus))


@dataclass(frozen=True)
class Job:
    """One answer of ``GET /v1/jobs/:id``, parsed and immutable.

    ``cost`` is an exact `~decimal.Decimal` in dollars, timestamps are
    timezone-aware. ``mode`` and ``prompt`` may be None: the service's own
    example of a failed job leaves them out.

    Example:
        >>> job = Job.from_dict({"job_id": "job_1", "status": "complete",
        ...     "image_url": "https://cdn.example/1.jpg", "cost": "$0.02",
        ...     "created_at": "2024-01-15T10:23:44Z"})
        >>> job.status.is_terminal, job.cost
        (True, Decimal('0.02'))
    """

    job_id: str
    status: JobStatus
    image_url: str | None = None
    mode: str | None = None
    prompt: str | None = None
    cost: Decimal | None = None
    error: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_dict(cls, data: object) -> Job:
        """Parse a decoded JSON body; `ContractError` when it cannot be a job."""
        if not isinstance(data, dict):
            raise ContractError(f"expected a JSON object, got {type(data).__name__}")
        job_id = data.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise ContractError("the job has no 'job_id'")
        status = data.get("status")
        if not isinstance(status, str) or not status:
            raise ContractError("the job has no 'status'", job_id=job_id)
        return cls(
            job_id=job_id,
            status=JobStatus(status),
            image_url=_optional_str(data, "image_url", job_id),
            mode=_optional_str(data, "mode", job_id),
            prompt=_optional_str(data, "prompt", job_id),
            cost=parse_cost(data.get("cost"), job_id=job_id),
            error=_optional_str(data, "error", job_id),
            created_at=parse_timestamp(data.get("created_at"), job_id=job_id),
            completed_at=parse_timestamp(data.get("completed_at"), job_id=job_id),
        )

    @property
    def is_terminal(self) -> bool:
        """True once the job is complete, failed or moderated."""
        return self.status.is_terminal

    def __str__(self) -> str:
        parts = [f"{self.job_id}: {self.status}"]
        if self.mode:
            parts.append(self.mode)
        if self.cost is not None:
            parts.append(f"${self.cost}")
        if self.prompt:
            parts.append(repr(shorten(self.prompt)))
        if self.error:
            parts.append(f"error: {shorten(self.error)}")
        return ", ".join(parts)


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it can safely go into a URL path, else `ValueError`.

    Letters, digits, ``_`` and ``-``, 1 to 128 of them: ``../wallet``,
    ``a/b``, ``x?y=1`` or ``%2e%2e`` never reach a request.
    """
    if not isinstance(job_id, str):
        raise ValueError(f"a job id is a string, not {type(job_id).__name__}")
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(
            f"not a job id: {shorten(job_id)!r} (expected 1-128 letters, digits,"
            " '_' or '-', as in 'job_8f2a9d3c')"
        )
    return job_id


def parse_cost(value: object, *, job_id: str | None = None) -> Decimal | None:
    """Parse a cost such as ``"$0.02"`` into ``Decimal("0.02")``; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            cost = Decimal(value.strip().removeprefix("$"))
        except InvalidOperation:
            cost = None
        if cost is not None and cost.is_finite() and cost >= 0:
            return cost
    raise ContractError(f"not a cost: {shorten(str(value))!r}", job_id=job_id)


def parse_timestamp(value: object, *, job_id: str | None = None) -> datetime | None:
    """Parse an ISO 8601 timestamp (``Z`` form included) into an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        text = re.sub(r"\.(\d{1,6})\d*", lambda m: "." + m[1].ljust(6, "0"), text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment
    raise ContractError(f"not a timestamp: {shorten(str(value))!r}", job_id=job_id)


def shorten(text: str, width: int = _MAX_SHOWN) -> str:
    """Cut ``text`` to ``width`` characters with an ellipsis, for messages."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _optional_str(data: dict[str, Any], key: str, job_id: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ContractError(f"'{key}' should be a string or null", job_id=job_id)
