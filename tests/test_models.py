"""Parsing the service's answers into `Job` values."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from shark_widgets import ContractError, Job, JobStatus
from shark_widgets.models import parse_timestamp, validate_job_id

# The two example bodies of the service's own page, verbatim.
PAGE_COMPLETE = {
    "job_id": "job_8f2a9d3c",
    "status": "complete",
    "image_url": "https://cdn.sharkapi.dev/out/job_8f2a9d3c.jpg",
    "mode": "2k",
    "prompt": "A great white shark in bioluminescent waters",
    "cost": "$0.02",
    "error": None,
    "created_at": "2024-01-15T10:23:44Z",
    "completed_at": "2024-01-15T10:23:59Z",
}
PAGE_FAILED = {
    "job_id": "job_xyz789",
    "status": "failed",
    "image_url": None,
    "cost": None,
    "error": "Generation service timeout. No charge applied.",
    "created_at": "2024-01-15T10:30:00Z",
    "completed_at": None,
}


def test_page_complete_example_parses():
    job = Job.from_dict(PAGE_COMPLETE)

    assert job == Job(
        job_id="job_8f2a9d3c",
        status=JobStatus.COMPLETE,
        image_url="https://cdn.sharkapi.dev/out/job_8f2a9d3c.jpg",
        mode="2k",
        prompt="A great white shark in bioluminescent waters",
        cost=Decimal("0.02"),
        error=None,
        created_at=datetime(2024, 1, 15, 10, 23, 44, tzinfo=timezone.utc),
        completed_at=datetime(2024, 1, 15, 10, 23, 59, tzinfo=timezone.utc),
    )
    assert job.is_terminal
    assert isinstance(job.cost, Decimal)


def test_page_failed_example_without_mode_and_prompt_parses():
    job = Job.from_dict(PAGE_FAILED)

    assert job.status is JobStatus.FAILED
    assert job.mode is None and job.prompt is None
    assert job.cost is None and job.completed_at is None
    assert job.error == "Generation service timeout. No charge applied."
    assert job.created_at == datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


def test_unknown_status_is_kept_and_not_terminal():
    job = Job.from_dict({"job_id": "job_1", "status": "paused"})

    assert job.status == "paused"
    assert isinstance(job.status, JobStatus)
    assert not job.status.is_known
    assert not job.is_terminal


@pytest.mark.parametrize("status", ["queued", "processing"])
def test_active_statuses_are_not_terminal(status):
    assert not JobStatus(status).is_terminal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2024-01-15T10:23:44Z",
            datetime(2024, 1, 15, 10, 23, 44, tzinfo=timezone.utc),
        ),
        (
            "2024-01-15T10:23:44.5Z",
            datetime(2024, 1, 15, 10, 23, 44, 500000, tzinfo=timezone.utc),
        ),
        (
            "2024-01-15T10:23:44.123456789Z",
            datetime(2024, 1, 15, 10, 23, 44, 123456, tzinfo=timezone.utc),
        ),
        (
            "2024-01-15T11:23:44+01:00",
            datetime(2024, 1, 15, 10, 23, 44, tzinfo=timezone.utc),
        ),
    ],
)
def test_timestamps_parse_timezone_aware(text, expected):
    moment = parse_timestamp(text)

    assert moment == expected
    assert moment.tzinfo is not None


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"status": "queued"},
        {"job_id": "job_1"},
        {"job_id": "job_1", "status": "complete", "cost": "two cents"},
        {"job_id": "job_1", "status": "complete", "cost": 0.02},
        {"job_id": "job_1", "status": "queued", "created_at": "yesterday"},
        {"job_id": "job_1", "status": "queued", "prompt": 42},
    ],
)
def test_bodies_that_cannot_be_a_job_raise_contract_error(body):
    with pytest.raises(ContractError):
        Job.from_dict(body)


def test_costs_are_exact_decimals():
    body = dict(PAGE_COMPLETE, cost="$0.10")

    assert Job.from_dict(body).cost * 3 == Decimal("0.30")


@pytest.mark.parametrize(
    "job_id", ["../wallet", "a/b", "x?y=1", "%2e%2e", "", "j" * 10_000, "job 1"]
)
def test_job_ids_that_cannot_go_into_a_path_are_refused(job_id):
    with pytest.raises(ValueError, match="job id"):
        validate_job_id(job_id)


def test_str_of_a_job_is_one_readable_line():
    text = str(Job.from_dict(PAGE_COMPLETE))

    assert text.startswith("job_8f2a9d3c: complete, 2k, $0.02")
