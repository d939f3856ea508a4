"""`SharkClient` against the running simulator, over real HTTP."""

import math
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from shark_widgets import (
    AuthenticationError,
    JobFailedError,
    JobModeratedError,
    JobNotFoundError,
    JobStatus,
    RequestRejectedError,
    ServiceUnavailableError,
    SharkClient,
)
from shark_widgets.simulator import Fault

from .conftest import INTERVAL


def read_until(client, job_id, status, deadline=10.0):
    """Read a job until it shows ``status``; return every status seen."""
    seen = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        job = client.get_job(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.status == status or job.is_terminal:
            return job, seen
        time.sleep(0.01)
    raise AssertionError(f"{job_id} never reached {status}: saw {seen}")


def test_token_and_base_url_come_from_the_environment(monkeypatch, sim):
    monkeypatch.setenv("SHARKAPI_TOKEN", sim.token)
    monkeypatch.setenv("SHARKAPI_BASE_URL", sim.base_url)

    job = SharkClient().generate("a reef shark")

    assert job.status == JobStatus.QUEUED


def test_an_empty_token_counts_as_unset(monkeypatch, sim):
    monkeypatch.setenv("SHARKAPI_TOKEN", "")
    client = SharkClient(base_url=sim.base_url)
    before = len(sim.requests)

    with pytest.raises(AuthenticationError, match="SHARKAPI_TOKEN"):
        client.get_job("job_123")
    assert len(sim.requests) == before


def test_default_base_url_is_the_public_service():
    assert SharkClient(token="x").base_url == "https://api.sharkapi.dev"


def test_a_job_moves_through_every_active_status_to_complete(client, sim):
    job_id = sim.create_job("a tiger shark", mode="2k", queued=0.2, processing=0.3)

    job, seen = read_until(client, job_id, JobStatus.COMPLETE)

    assert seen == ["queued", "processing", "complete"]
    assert job.cost == Decimal("0.02")
    assert job.image_url.startswith(sim.image_base_url)
    assert job.completed_at >= job.created_at


def test_active_jobs_have_no_cost_and_no_completion_time(client, sim):
    job_id = sim.create_job("a slow shark", queued=0.0, processing=math.inf)

    job, _ = read_until(client, job_id, JobStatus.PROCESSING)

    assert job.status == JobStatus.PROCESSING
    assert job.cost is None and job.completed_at is None and job.image_url is None


@pytest.mark.parametrize(
    ("prompt", "status"),
    [("a shark [fail]", "failed"), ("a shark [moderate]", "moderated")],
)
def test_failed_and_moderated_endings(client, sim, prompt, status):
    job_id = sim.create_job(prompt, queued=0.0, processing=0.05)

    job, _ = read_until(client, job_id, status)

    assert job.status == status
    assert job.cost is None and job.image_url is None


def test_missing_malformed_and_unknown_tokens_get_401(sim):
    for token in ("not-a-bearer token", "sk_test_unknown"):
        with pytest.raises(AuthenticationError, match="401"):
            SharkClient(token=token, base_url=sim.base_url).get_job("job_1")


def test_unknown_job_is_404(client):
    with pytest.raises(JobNotFoundError) as caught:
        client.get_job("job_000000000000")

    assert caught.value.job_id == "job_000000000000"


def test_another_accounts_job_is_404(sim):
    mine = sim.create_job("my shark")
    other = sim.client(sim.new_account("1.00"))

    with pytest.raises(JobNotFoundError):
        other.get_job(mine)


def test_the_wallet_is_charged_once_for_a_complete_job(sim):
    token = sim.new_account("1.00")
    client = sim.client(token)
    job = client.generate("a whale shark", mode="2k")

    done = client.wait(job.job_id, interval=INTERVAL, timeout=10)
    for _ in range(5):
        client.get_job(job.job_id)

    assert done.status == JobStatus.COMPLETE
    assert sim.balance(token) == Decimal("0.98")


@pytest.mark.parametrize(
    ("prompt", "error", "status"),
    [
        ("a shark [fail]", JobFailedError, "failed"),
        ("a shark [moderate]", JobModeratedError, "moderated"),
    ],
)
def test_failed_and_moderated_jobs_are_never_charged(sim, prompt, error, status):
    token = sim.new_account("1.00")
    client = sim.client(token)
    job = client.generate(prompt)

    with pytest.raises(error) as caught:
        client.wait(job.job_id, interval=INTERVAL, timeout=10)

    assert caught.value.job.status == status
    assert sim.balance(token) == Decimal("1.00")


def test_wait_times_out_on_a_job_that_never_ends(client, sim):
    job_id = sim.create_job("a stuck shark", queued=0.0, processing=math.inf)

    with pytest.raises(TimeoutError, match="still processing"):
        client.wait(job_id, interval=INTERVAL, timeout=0.3)


def test_an_empty_wallet_is_refused_with_402(sim):
    client = sim.client(sim.new_account("0.00"))

    with pytest.raises(RequestRejectedError) as caught:
        client.generate("a shark on credit")

    assert caught.value.status_code == 402


@pytest.mark.parametrize(("prompt", "mode"), [("", "1k"), ("  ", "1k"), ("x", "4k")])
def test_bad_submissions_are_refused_before_sending(client, sim, prompt, mode):
    before = len(sim.requests)

    with pytest.raises(ValueError):
        client.generate(prompt, mode)
    assert len(sim.requests) == before


def test_an_html_502_page_is_a_service_error_not_a_json_error(client, sim):
    job_id = sim.create_job("a shark behind a proxy")
    sim.inject(Fault.status(502, body="<html>Bad Gateway</html>"), job_id=job_id)

    with pytest.raises(ServiceUnavailableError) as caught:
        client.get_job(job_id)

    assert caught.value.status_code == 502


def test_a_submission_is_never_retried(client, sim):
    sim.inject(Fault.status(503))
    before = len(sim.requests)

    with pytest.raises(ServiceUnavailableError):
        client.generate("a shark that must not be paid twice")
    assert len(sim.requests) == before + 1


def test_requests_reuse_one_pooled_connection(sim):
    client = sim.client()
    job_id = sim.create_job("a pooled shark")
    before = sim.connections_accepted

    for _ in range(20):
        client.get_job(job_id)

    assert sim.connections_accepted - before == 1


def test_the_token_is_not_in_the_repr(sim):
    client = sim.client()

    assert sim.token not in repr(client)
    assert "token=set" in repr(client)


def test_a_refused_token_names_where_it_came_from(sim, monkeypatch):
    given = SharkClient(token="sk_test_wrong", base_url=sim.base_url)
    monkeypatch.setenv("SHARKAPI_TOKEN", "sk_test_wrong")
    ambient = SharkClient(base_url=sim.base_url)

    with pytest.raises(AuthenticationError, match="check token="):
        given.get_job("job_1")
    with pytest.raises(AuthenticationError, match="check SHARKAPI_TOKEN"):
        ambient.get_job("job_1")


def test_the_library_never_writes_log_lines_to_stderr_by_itself():
    code = (
        "import logging, shark_widgets;"
        " logging.getLogger('shark_widgets.polling').warning('nobody routed this')"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stderr == ""
