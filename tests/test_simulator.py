"""The local SharkAPI simulator, over real HTTP on loopback."""

from __future__ import annotations

import io
import json
import math
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
from PIL import Image

from shark_widgets.simulator import ApiError, Fault, SharkSimulator

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FIELDS = {
    "job_id",
    "status",
    "image_url",
    "mode",
    "prompt",
    "cost",
    "error",
    "created_at",
    "completed_at",
}


@pytest.fixture(scope="module")
def sim():
    with SharkSimulator(time_scale=0.02, moderation_words=("kraken",)) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def no_faults_left(request):
    yield
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").clear_faults()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def get_job(sim, job_id, token=None, session=requests, **kwargs):
    return session.get(
        f"{sim.base_url}/v1/jobs/{job_id}", headers=auth(token or sim.token), **kwargs
    )


def poll_until(sim, session, job_id, statuses, token=None, timeout=3.0):
    """Poll until the status is one of ``statuses``; return the body and the trail."""
    deadline = time.monotonic() + timeout
    trail = []
    while time.monotonic() < deadline:
        body = get_job(sim, job_id, token, session).json()
        if not trail or trail[-1] != body["status"]:
            trail.append(body["status"])
        if body["status"] in statuses:
            return body, trail
        time.sleep(0.005)
    raise AssertionError(f"{job_id} never reached {statuses}: {trail}")


def post(sim, body, token=None, **kwargs):
    return requests.post(
        f"{sim.base_url}/v1/generate", headers=auth(token or sim.token), **kwargs
    )


# Job life cycle


def test_job_goes_queued_processing_complete_with_the_documented_body(sim, http):
    job_id = sim.create_job("a great white shark", "1k", queued=0.15, processing=0.15)
    assert re.fullmatch(r"job_[0-9a-f]{12}", job_id)

    first = get_job(sim, job_id, session=http)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/json"
    queued = first.json()
    assert set(queued) == FIELDS
    assert queued["status"] == "queued"
    assert (queued["job_id"], queued["mode"]) == (job_id, "1k")
    assert queued["prompt"] == "a great white shark"
    assert ISO_Z.match(queued["created_at"])
    for name in ("image_url", "cost", "error", "completed_at"):
        assert queued[name] is None

    processing, _ = poll_until(sim, http, job_id, {"processing"})
    for name in ("image_url", "cost", "error", "completed_at"):
        assert processing[name] is None

    done, trail = poll_until(sim, http, job_id, {"complete"})
    assert trail[0] == "processing" and trail[-1] == "complete"
    assert done["cost"] == "$0.01"
    assert done["error"] is None
    assert done["image_url"] == f"{sim.image_base_url}/out/{job_id}.jpg"
    assert ISO_Z.match(done["completed_at"])
    assert done["completed_at"] >= done["created_at"]

    planned = sim.transitions(job_id)
    assert list(planned) == ["queued", "processing", "complete"]
    assert planned["processing"] - planned["queued"] == pytest.approx(0.15)
    assert planned["complete"] - planned["processing"] == pytest.approx(0.15)


def test_drawn_durations_are_scaled_and_seeded():
    def durations(seed, scale):
        simulator = SharkSimulator(time_scale=scale, seed=seed)
        planned = simulator.transitions(simulator.create_job("a reef"))
        return planned["processing"] - planned["queued"], planned["complete"] - (
            planned["processing"]
        )

    queued, processing = durations(seed=3, scale=1.0)
    assert 0.5 <= queued <= 3.0 and 3.0 <= processing <= 12.0
    assert durations(seed=3, scale=0.5) == pytest.approx((queued / 2, processing / 2))
    assert durations(seed=4, scale=1.0) != pytest.approx((queued, processing))


def test_a_job_processing_forever_never_plans_an_end(sim, http):
    job_id = sim.create_job("an endless reef", queued=0, processing=math.inf)
    assert get_job(sim, job_id, session=http).json()["status"] == "processing"
    assert list(sim.transitions(job_id)) == ["queued", "processing"]


@pytest.mark.parametrize(
    ("prompt", "status", "error"),
    [
        ("a shark [fail]", "failed", "Generation service timeout. No charge applied."),
        ("a shark [moderate]", "moderated", None),
        ("Release the KRAKEN!", "moderated", None),
        ("krakens of the deep", "complete", None),
    ],
)
def test_prompt_decides_the_outcome(sim, http, prompt, status, error):
    job_id = sim.create_job(prompt, "2k", queued=0.01, processing=0.01)
    body, _ = poll_until(sim, http, job_id, {"complete", "failed", "moderated"})
    assert body["status"] == status
    assert body["error"] == error
    if status == "complete":
        assert body["cost"] == "$0.02"
    else:
        assert body["image_url"] is body["cost"] is body["completed_at"] is None


# Authentication and ownership


@pytest.mark.parametrize(
    "header",
    [None, "sk_test_abc", "Token sk_test_abc", "Bearer", "Bearer a b", "Bearer nope"],
)
def test_poll_without_a_valid_token_is_401(sim, header):
    job_id = sim.create_job("a shark")
    headers = {} if header is None else {"Authorization": header}
    response = requests.get(f"{sim.base_url}/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_post_without_token_is_401_and_creates_nothing(sim):
    response = requests.post(f"{sim.base_url}/v1/generate", json={"prompt": "x"})
    assert response.status_code == 401
    assert sim.requests[-1].job_id is None


def test_unknown_job_and_other_accounts_job_answer_the_same_404(sim):
    other = sim.new_account()
    theirs = sim.create_job("their shark", token=other)
    unknown = get_job(sim, "job_000000000000")
    foreign = get_job(sim, theirs)
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.content == foreign.content
    assert unknown.json() == {"error": "Job not found."}
    assert get_job(sim, theirs, token=other).status_code == 200


def test_unknown_route_is_json_404(sim):
    response = requests.get(f"{sim.base_url}/v1/nothing", headers=auth(sim.token))
    assert response.status_code == 404
    assert "error" in response.json()


# POST /v1/generate


def test_post_answers_the_full_queued_job(sim):
    response = post(sim, None, json={"prompt": "a mako", "mode": "2k"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert (body["status"], body["mode"], body["prompt"]) == ("queued", "2k", "a mako")
    assert sim.requests[-1].job_id == body["job_id"]
    assert get_job(sim, body["job_id"]).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"prompt": "", "mode": "1k"}},
        {"json": {"prompt": "   ", "mode": "1k"}},
        {"json": {"mode": "1k"}},
        {"json": {"prompt": 5, "mode": "1k"}},
        {"json": {"prompt": "x" * 2001, "mode": "1k"}},
        {"json": {"prompt": "a shark", "mode": "4k"}},
        {"json": {"prompt": "a shark", "mode": ["1k"]}},
        {"json": ["a shark"]},
        {"data": "prompt=a shark"},
    ],
)
def test_post_rejects_a_bad_body_with_400(sim, kwargs):
    response = post(sim, None, **kwargs)
    assert response.status_code == 400
    assert response.json()["error"]


def test_post_accepts_a_prompt_of_exactly_2000_characters(sim):
    assert post(sim, None, json={"prompt": "x" * 2000, "mode": "1k"}).ok


def test_post_is_402_when_the_wallet_cannot_cover_the_price(sim):
    token = sim.new_account("0.01")
    refused = post(sim, None, token=token, json={"prompt": "a shark", "mode": "2k"})
    assert refused.status_code == 402
    assert refused.json()["error"]
    accepted = post(sim, None, token=token, json={"prompt": "a shark", "mode": "1k"})
    assert accepted.status_code == 200
    assert sim.balance(token) == Decimal("0.01")


def test_create_job_applies_the_same_rules():
    simulator = SharkSimulator()
    with pytest.raises(ApiError) as empty:
        simulator.create_job(" ")
    assert empty.value.status_code == 400
    poor = simulator.new_account("0.00")
    with pytest.raises(ApiError) as broke:
        simulator.create_job("a shark", token=poor)
    assert broke.value.status_code == 402
    with pytest.raises(KeyError):
        simulator.balance("sk_test_unknown")


# Wallet


def test_complete_job_is_charged_exactly_once(sim, http):
    token = sim.new_account("1.00")
    job_id = sim.create_job("a blue shark", "2k", token, queued=0.05, processing=0.1)
    assert sim.balance(token) == Decimal("1.00")
    poll_until(sim, http, job_id, {"complete"}, token)
    for _ in range(20):
        assert get_job(sim, job_id, token, http).json()["status"] == "complete"
    assert sim.balance(token) == Decimal("0.98")


def test_complete_job_is_charged_even_if_nobody_polls(sim):
    token = sim.new_account("1.00")
    job_id = sim.create_job("a tiger shark", "1k", token, queued=0.01, processing=0.01)
    time.sleep(max(0.0, sim.transitions(job_id)["complete"] - time.monotonic()))
    assert sim.balance(token) == Decimal("0.99")


@pytest.mark.parametrize("prompt", ["a shark [fail]", "a shark [moderate]"])
def test_failed_and_moderated_jobs_are_never_charged(sim, http, prompt):
    token = sim.new_account("1.00")
    job_id = sim.create_job(prompt, "2k", token, queued=0.01, processing=0.01)
    poll_until(sim, http, job_id, {"failed", "moderated"}, token)
    get_job(sim, job_id, token, http)
    assert sim.balance(token) == Decimal("1.00")


# Images


@pytest.mark.parametrize(("mode", "size"), [("1k", 1024), ("2k", 2048)])
def test_image_is_served_without_token_at_the_mode_size(sim, http, mode, size):
    job_id = sim.create_job(f"a whale shark {mode}", mode, queued=0, processing=0.01)
    body, _ = poll_until(sim, http, job_id, {"complete"})
    response = requests.get(body["image_url"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size) == ("JPEG", (size, size))
    assert requests.get(body["image_url"]).content == response.content
    record = sim.image_requests[-1]
    assert record.path == f"/out/{job_id}.jpg"
    assert (record.authorization, record.status_code) == (None, 200)


def test_image_bytes_depend_on_prompt_only(sim, http):
    urls = []
    for prompt in ("a nurse shark", "a nurse shark", "a lemon shark"):
        job_id = sim.create_job(prompt, queued=0, processing=0)
        urls.append(poll_until(sim, http, job_id, {"complete"})[0]["image_url"])
    same, again, other = (requests.get(url).content for url in urls)
    assert same == again != other


def test_image_host_records_an_authorization_header_it_was_sent(sim, http):
    job_id = sim.create_job("a sand shark", queued=0, processing=0)
    url = poll_until(sim, http, job_id, {"complete"})[0]["image_url"]
    assert requests.get(url, headers={"Authorization": "Bearer leaked"}).ok
    assert sim.image_requests[-1].authorization == "Bearer leaked"


def test_image_is_404_for_unknown_or_unfinished_jobs(sim):
    unfinished = sim.create_job("a slow shark", queued=0, processing=math.inf)
    for job_id in ("job_000000000000", unfinished):
        response = requests.get(f"{sim.image_base_url}/out/{job_id}.jpg")
        assert response.status_code == 404
        assert sim.image_requests[-1].status_code == 404


# Connections


def test_one_session_uses_one_kept_alive_connection(sim, http):
    job_id = sim.create_job("a shark", queued=0, processing=math.inf)
    before = sim.connections_accepted
    for _ in range(25):
        response = get_job(sim, job_id, session=http)
        assert response.status_code == 200
        assert response.headers.get("Connection", "").lower() != "close"
    generate = f"{sim.base_url}/v1/generate"
    assert http.post(generate, json={"prompt": "a shark"}).status_code == 401
    assert http.post(generate, json={"prompt": "a shark"}, headers=auth(sim.token)).ok
    assert get_job(sim, job_id, session=http).status_code == 200
    assert sim.connections_accepted - before == 1


def test_serves_hundreds_of_polls_a_second(sim):
    job_id = sim.create_job("a busy shark", queued=0, processing=math.inf)

    def hammer(_):
        with requests.Session() as session:
            for _ in range(100):
                assert get_job(sim, job_id, session=session).status_code == 200

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(hammer, range(4)))
    assert 400 / (time.monotonic() - started) > 200
    assert sim.polls(job_id) == 400


def test_polls_counts_the_gets_of_one_job(sim, http):
    job_id = sim.create_job("a counted shark", queued=0, processing=math.inf)
    other = sim.create_job("an uncounted shark")
    for _ in range(7):
        get_job(sim, job_id, session=http)
    assert (sim.polls(job_id), sim.polls(other)) == (7, 0)


def test_stats_endpoint_reports_counters_to_another_process(sim, http):
    stats_url = f"{sim.base_url}/_simulator/stats"
    mine = sim.new_account()
    job_id = sim.create_job("a watched shark", token=mine, queued=0.5, processing=1)
    forever = sim.create_job("a slow shark", token=mine, processing=math.inf)
    sim.create_job("somebody else's shark")
    for _ in range(3):
        get_job(sim, job_id, token=mine, session=http)
    requests_before = len(sim.requests)

    stats = http.get(stats_url, headers=auth(mine)).json()
    again = http.get(stats_url, headers=auth(mine)).json()

    assert stats["connections_accepted"] == sim.connections_accepted
    assert stats["requests"] == requests_before == again["requests"]
    assert stats["image_connections_accepted"] >= 0
    assert set(stats["jobs"]) == {job_id, forever}
    assert stats["jobs"][job_id]["polls"] == 3
    assert stats["jobs"][job_id]["transitions"] == sim.transitions(job_id)
    assert set(stats["jobs"][forever]["transitions"]) == {"queued", "processing"}
    assert abs(stats["monotonic"] - time.monotonic()) < 5
    assert http.get(stats_url).status_code == 401
    assert http.post(stats_url, headers=auth(mine)).status_code == 404


# Faults


@pytest.fixture
def stuck(sim):
    """A job whose body does not change: processing forever."""
    return sim.create_job("a stuck shark", queued=0, processing=math.inf)


def test_status_fault_with_retry_after_then_normal_again(sim, http, stuck):
    sim.inject(Fault.status(429, {"Retry-After": "3"}), job_id=stuck)
    limited = get_job(sim, stuck, session=http)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.headers["Content-Type"].startswith("text/html")
    assert (sim.requests[-1].fault, sim.requests[-1].status_code) == ("status_429", 429)
    assert get_job(sim, stuck, session=http).status_code == 200


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_error_faults_answer_html(sim, stuck, code):
    sim.inject(Fault.status(code))
    response = get_job(sim, stuck)
    assert response.status_code == code
    assert "<html>" in response.text


def test_html_200_is_a_page_not_json(sim, stuck):
    sim.inject(Fault.html_200())
    response = get_job(sim, stuck)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_truncated_json_is_the_real_body_cut_in_half(sim, stuck):
    sim.inject(Fault.truncated_json())
    cut = get_job(sim, stuck)
    whole = get_job(sim, stuck)
    assert cut.headers["Content-Type"] == "application/json"
    assert cut.content == whole.content[: len(whole.content) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)


def test_malformed_json_does_not_parse(sim, stuck):
    sim.inject(Fault.malformed_json())
    response = get_job(sim, stuck)
    assert response.status_code == 200
    assert response.text.startswith('{"job_id": ')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_missing_fields_removes_status_by_default(sim, stuck):
    sim.inject(Fault.missing_fields())
    sim.inject(Fault.missing_fields("mode", "prompt"), after=1)
    without_status = get_job(sim, stuck).json()
    without_two = get_job(sim, stuck).json()
    assert set(without_status) == FIELDS - {"status"}
    assert set(without_two) == FIELDS - {"mode", "prompt"}


def test_override_replaces_fields_of_the_real_body(sim, http):
    job_id = sim.create_job("an overridden shark", queued=0, processing=0)
    poll_until(sim, http, job_id, {"complete"})
    sim.inject(Fault.override(status="paused"))
    sim.inject(Fault.override(image_url=None), after=1)
    paused = get_job(sim, job_id).json()
    assert (paused["status"], paused["job_id"]) == ("paused", job_id)
    without_url = get_job(sim, job_id).json()
    assert (without_url["status"], without_url["image_url"]) == ("complete", None)


def test_reset_aborts_the_connection(sim, stuck):
    sim.inject(Fault.reset())
    with pytest.raises(requests.ConnectionError):
        get_job(sim, stuck)
    assert (sim.requests[-1].fault, sim.requests[-1].status_code) == ("reset", None)
    assert get_job(sim, stuck).status_code == 200


def test_hang_makes_a_read_timeout_fire(sim, stuck):
    sim.inject(Fault.hang(seconds=2.0))
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        get_job(sim, stuck, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert sim.requests[-1].fault == "hang"
    assert get_job(sim, stuck, timeout=2).status_code == 200


def test_times_after_and_job_id_select_the_faulted_requests(sim, http, stuck):
    bystander = sim.create_job("a bystander shark", queued=0, processing=math.inf)
    sim.inject(Fault.status(503), job_id=stuck, after=2, times=2)
    codes = []
    for _ in range(5):
        codes.append(get_job(sim, stuck, session=http).status_code)
        assert get_job(sim, bystander, session=http).status_code == 200
    assert codes == [200, 200, 503, 503, 200]


def test_times_none_lasts_until_cleared(sim, http, stuck):
    sim.inject(Fault.status(502), times=None)
    assert [get_job(sim, stuck, session=http).status_code for _ in range(4)] == [
        502
    ] * 4
    sim.clear_faults()
    assert get_job(sim, stuck, session=http).status_code == 200


def test_a_faulted_post_creates_no_job(sim):
    token = sim.new_account("0.05")
    sim.inject(Fault.status(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    limited = post(sim, None, token=token, json={"prompt": "a shark", "mode": "1k"})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert sim.requests[-1].job_id is None


def test_image_target_403_leaves_the_api_alone(sim, http, stuck):
    job_id = sim.create_job("an expiring shark", queued=0, processing=0)
    url = poll_until(sim, http, job_id, {"complete"})[0]["image_url"]
    sim.inject(Fault.status(403), target="image")
    assert get_job(sim, stuck, session=http).status_code == 200
    assert requests.get(url).status_code == 403
    assert sim.image_requests[-1].fault == "status_403"
    assert requests.get(url).status_code == 200


def test_inject_refuses_nonsense(sim):
    with pytest.raises(ValueError):
        sim.inject(Fault.reset(), target="cdn")
    with pytest.raises(ValueError):
        sim.inject(Fault.reset(), times=0)


# Lifecycle and command line


def test_stop_is_prompt_idempotent_and_frees_the_port():
    simulator = SharkSimulator()
    with pytest.raises(RuntimeError):
        _ = simulator.base_url
    simulator.start()
    port = int(simulator.base_url.rsplit(":", 1)[1])
    simulator.inject(Fault.hang(seconds=30))
    outcome = []

    def wait_for_the_hung_request():
        try:
            get_job(simulator, "job_000000000000", timeout=10)
        except requests.RequestException as error:
            outcome.append(error)

    hung = threading.Thread(target=wait_for_the_hung_request, daemon=True)
    hung.start()
    deadline = time.monotonic() + 2
    while not simulator.requests and time.monotonic() < deadline:
        time.sleep(0.005)

    started = time.monotonic()
    simulator.stop()
    simulator.stop()
    assert time.monotonic() - started < 2
    hung.join(timeout=2)
    assert not hung.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/jobs/x", timeout=2)
    with socket.create_server(("127.0.0.1", port)):
        pass
    with pytest.raises(RuntimeError):
        simulator.start()


def test_cli_serves_until_terminated():
    process = subprocess.Popen(
        [sys.executable, "-m", "shark_widgets.simulator", "--port=0", "--balance=3.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not any("SHARKAPI_BASE_URL=" in line for line in lines):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line)
        found = re.search(r"SHARKAPI_BASE_URL=(\S+) SHARKAPI_TOKEN=(\S+)", lines[-1])
        base_url, token = found.groups()
        assert re.fullmatch(r"sk_test_[A-Za-z0-9_-]{24}", token)
        known = requests.get(
            f"{base_url}/v1/jobs/job_000000000000", headers=auth(token)
        )
        assert known.status_code == 404
        stranger = requests.get(f"{base_url}/v1/jobs/x", headers=auth("sk_test_x"))
        assert stranger.status_code == 401
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in out


def test_client_points_at_the_simulator(sim):
    other = sim.new_account()
    assert sim.client().base_url == sim.base_url
    assert sim.client(other).base_url == sim.base_url


def test_running_jobs_hold_their_price_so_a_wallet_never_goes_negative(sim):
    token = sim.new_account("0.02")
    client = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{sim.base_url}/v1/generate"

    codes = [
        client.post(
            url, json={"prompt": f"shark {n}", "mode": "1k"}, headers=headers
        ).status_code
        for n in range(3)
    ]

    assert codes == [200, 200, 402]
