"""The token stays on the Python side and goes to the API origin only; nothing
the server or the user sends is trusted as HTML or as a URL path.

A canary token (an account opened with a token this module chose) is searched
for in every artifact: synced widget state, HTML values, reprs, messages,
log lines, tracebacks, and a notebook executed in a real kernel and saved with
its widget state.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import textwrap
import time
import traceback

import nbformat
import pytest
from ipywidgets import Widget

from shark_widgets import JobWidget, SharkAPIError, SharkClient
from shark_widgets.errors import ContractError
from shark_widgets.simulator import Fault

from .conftest import INTERVAL
from .notebook_runs import run_notebook

# Faults that persist end after several backed-off reads: a shorter interval
# keeps those tests short.
FAST = 0.02

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
UNSAFE_IDS = ["../wallet", "a/b", "x?y=1", "%2e%2e", "", "j" * 10_000]


def canary() -> str:
    return f"sk_test_CANARY{secrets.token_hex(12)}"


@pytest.fixture
def token(sim):
    """A fresh account whose token is a canary, unique to the test."""
    return sim.new_account("5.00", token=canary())


def wait_ended(widget, timeout=10.0):
    assert widget._ended.wait(timeout), "polling did not end in time"
    return widget


def artifacts(widget, records):
    """Every text a widget and the log expose to a user or a saved notebook."""
    parts = [widget, *widget.children]
    parts += [part.layout for part in parts]
    texts = [
        json.dumps(Widget.get_manager_state(widgets=parts), default=repr),
        repr(widget),
        repr(widget._client),
        str(widget.job),
        widget.message,
        widget.note,
        widget._header.value,
        widget._body.value,
        json.dumps(widget._repr_mimebundle_(), default=repr),
    ]
    if widget.error is not None:
        texts.append(repr(widget.error))
        texts.append("".join(traceback.format_exception(widget.error)))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts.extend(formatter.format(record) for record in records)
    return texts


# The token on the Python side only


def test_the_token_is_in_no_state_html_repr_message_log_or_traceback(
    sim, token, poller, caplog
):
    caplog.set_level(logging.DEBUG)
    client = sim.client(token)
    done = sim.create_job("a shark that ends well", token=token, processing=0.1)
    refused = sim.create_job("a shark met by a 401", token=token, processing=math.inf)
    sim.inject(Fault.status(503), job_id=done, after=1)
    sim.inject(Fault.status(401), job_id=refused, after=2)
    widgets = [
        JobWidget(job_id, client, interval=INTERVAL, poller=poller)
        for job_id in (done, refused)
    ]
    for widget in widgets:
        wait_ended(widget)

    texts = [text for widget in widgets for text in artifacts(widget, caplog.records)]

    assert widgets[0].status == "complete" and widgets[0].image is not None
    assert widgets[1].status == "error" and "401" in widgets[1].message
    joined = "\n".join(texts)
    assert "401" in joined and done in joined and "GET /v1/jobs/" in caplog.text
    assert [text for text in texts if token in text] == []
    for widget in widgets:
        widget.close()


def test_a_token_that_cannot_go_in_a_header_is_refused_without_quoting_it(sim):
    token = canary()
    before = len(sim.requests)

    for bad in (token + "\nX-Injected: 1", token + "\x00", token + "\u20ac"):
        with pytest.raises(ValueError, match="not shown") as caught:
            SharkClient(token=bad, base_url=sim.base_url)
        shown = "".join(traceback.format_exception(caught.value))
        assert token not in shown

    assert len(sim.requests) == before


def test_surrounding_whitespace_of_a_token_is_dropped(sim, token, monkeypatch):
    monkeypatch.setenv("SHARKAPI_TOKEN", f"  {token}\n")
    job_id = sim.create_job("a shark read with a pasted token", token=token)

    assert SharkClient(base_url=sim.base_url).get_job(job_id).job_id == job_id


def test_no_error_of_a_poll_carries_the_token(sim, token):
    client = sim.client(token)
    job_id = sim.create_job("a shark among errors", token=token, processing=math.inf)
    faults = [
        Fault.status(401),
        Fault.status(404),
        Fault.status(503),
        Fault.html_200(),
        Fault.malformed_json(),
        Fault.reset(),
    ]
    shown = []
    for fault in faults:
        sim.inject(fault, job_id=job_id)
        with pytest.raises(SharkAPIError) as caught:
            client.get_job(job_id)
        shown.append("".join(traceback.format_exception(caught.value)))

    assert all(token not in text for text in shown)
    assert "refused the token (401)" in shown[0]


# The token goes to the API origin only


def test_the_image_request_carries_no_authorization(sim, token, poller):
    job_id = sim.create_job("a shark on a CDN", token=token, processing=0.05)
    widget = wait_ended(JobWidget(job_id, sim.client(token), INTERVAL, poller=poller))

    sent = [r for r in sim.image_requests if r.path == f"/out/{job_id}.jpg"]

    assert widget.status == "complete" and widget.image is not None
    assert len(sent) == 1 and sent[0].authorization is None
    widget.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_redirect_to_another_host_or_port_drops_the_token(sim, token, host):
    client = sim.client(token)
    job_id = sim.create_job("a redirected shark", token=token, queued=0, processing=0)
    client.get_job(job_id)
    port = sim.image_base_url.rsplit(":", 1)[1]
    target = f"http://{host}:{port}/out/{job_id}.jpg"
    sim.inject(Fault.status(307, {"Location": target}), job_id=job_id)
    before = len(sim.image_requests)

    with pytest.raises(ContractError, match="image/jpeg"):
        client.get_job(job_id)

    arrived = sim.image_requests[before:]
    assert [r.authorization for r in arrived] == [None]
    assert arrived[0].status_code == 200


def test_a_redirect_within_the_api_origin_keeps_the_token(sim, token):
    client = sim.client(token)
    job_id = sim.create_job("a shark moved in place", token=token)
    moved = f"{sim.base_url}/v1/jobs/{job_id}"
    sim.inject(Fault.status(307, {"Location": moved}), job_id=job_id)

    assert client.get_job(job_id).job_id == job_id
    assert [r.status_code for r in sim.requests if r.job_id == job_id][-2:] == [
        307,
        200,
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://api.sharkapi.dev",
        "http://10.0.0.7:8000",
        "http://0.0.0.0:8000",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://127.0.0.1@example.com",
        "ftp://127.0.0.1",
        "https://",
        "api.sharkapi.dev",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url, monkeypatch):
    with pytest.raises(ValueError, match=r"use https://"):
        SharkClient(token="sk_test_x", base_url=url)
    monkeypatch.setenv("SHARKAPI_BASE_URL", url)
    with pytest.raises(ValueError, match=r"use https://"):
        SharkClient(token="sk_test_x")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.sharkapi.dev",
        "http://localhost:8000",
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://[::1]:8000",
    ],
)
def test_https_and_loopback_http_are_accepted(url):
    assert SharkClient(token="sk_test_x", base_url=url).base_url == url


@pytest.mark.parametrize(
    "image_url",
    [
        "http://cdn.example.com/out/x.jpg",
        "javascript:alert(1)",
        "file:///etc/passwd",
        'https://"><img src=x onerror=alert(1)>',
    ],
)
def test_an_image_url_that_is_not_https_is_never_used(sim, poller, image_url):
    job_id = sim.create_job("a shark with an odd link", processing=0.0)
    sim.inject(Fault.override(image_url=image_url), job_id=job_id, times=None)
    widget = wait_ended(JobWidget(job_id, sim.client(), FAST, poller=poller))

    assert widget.status == "error" and widget.image is None
    assert "image URL" in widget.message or "image_url" in widget.message
    assert not [r for r in sim.image_requests if job_id in r.path]
    assert "<img src=x" not in widget._body.value
    widget.close()


# Job ids in URL paths


@pytest.mark.parametrize("job_id", [*UNSAFE_IDS, None, 123], ids=repr)
def test_an_unsafe_job_id_is_refused_before_any_request(sim, poller, job_id):
    client = sim.client()
    before = len(sim.requests)

    for attempt in (
        lambda: client.get_job(job_id),
        lambda: client.wait(job_id, interval=INTERVAL, timeout=1),
        lambda: JobWidget(job_id, client, INTERVAL, poller=poller),
    ):
        with pytest.raises(ValueError) as caught:
            attempt()
        assert "job id" in str(caught.value)
        assert len(str(caught.value)) < 200

    time.sleep(INTERVAL * 2)
    assert len(sim.requests) == before
    assert poller.pending == 0


# HTML


def test_everything_from_the_server_or_the_user_is_escaped(sim, poller):
    prompt = "<script>alert('prompt')</script> & friends"
    job_id = sim.create_job(prompt, processing=math.inf)
    sim.inject(
        Fault.override(status='"><script>alert("status")</script>'),
        job_id=job_id,
        times=2,
    )
    sim.inject(
        Fault.override(
            status="failed", error="<img src=x onerror=alert(1)>", mode="<i>1k</i>"
        ),
        job_id=job_id,
        after=2,
        times=None,
    )
    widget = JobWidget(job_id, sim.client(), INTERVAL, poller=poller)
    seen = []
    widget._header.observe(lambda change: seen.append(change["new"]), "value")
    widget._body.observe(lambda change: seen.append(change["new"]), "value")
    wait_ended(widget)
    seen.append(widget._repr_mimebundle_()["text/html"])

    html = "\n".join(seen)
    assert widget.status == "failed"
    for raw in ("<script", "<img src=x", "<i>1k"):
        assert raw not in html
    assert (
        "&lt;script&gt;alert(&#x27;prompt&#x27;)&lt;/script&gt; &amp; friends" in html
    )
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'data-status="&quot;&gt;&lt;script&gt;' in html
    assert "&lt;i&gt;1k&lt;/i&gt;" in html
    widget.close()


def test_a_bad_cost_is_reported_escaped(sim, poller):
    job_id = sim.create_job("a shark with a price", processing=math.inf)
    sim.inject(Fault.override(cost="$<b>1</b>"), job_id=job_id, times=None)

    widget = wait_ended(JobWidget(job_id, sim.client(), FAST, poller=poller))

    assert widget.status == "error" and "not a cost" in widget.message
    assert "<b>1</b>" not in widget._body.value
    assert "$&lt;b&gt;1&lt;/b&gt;" in widget._body.value
    widget.close()


# A notebook executed in a real kernel, saved with its widget state


NOTEBOOK = [
    """
    import logging, os
    logging.basicConfig(
        filename=os.environ["CANARY_LOG"], level=logging.DEBUG, force=True,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    from shark_widgets import JobWidget, SharkClient
    client = SharkClient()
    client
    """,
    """
    done = JobWidget.submit("a canary shark", interval=0.05)
    done
    """,
    """
    done.wait(timeout=30)
    print(repr(done), done.status, done.job, sep="\\n")
    """,
    """
    refused = JobWidget(os.environ["JOB_401"], interval=0.05)
    refused
    """,
    """
    refused.wait(timeout=30)
    print(repr(refused), refused.status, refused.message, repr(refused.error))
    """,
    """
    client.get_job(os.environ["JOB_401"])
    """,
    """
    import traceback
    traceback.print_exception(refused.error)
    logging.getLogger("shark_widgets").exception("logged", exc_info=refused.error)
    print(vars(done.job), refused._repr_mimebundle_()["text/plain"])
    """,
]


def test_a_saved_notebook_holds_no_trace_of_the_token(sim, tmp_path, monkeypatch):
    token = sim.new_account("5.00", token=canary())
    job_401 = sim.create_job("a shark met by a 401", token=token, processing=math.inf)
    sim.inject(Fault.status(401), job_id=job_401, after=2, times=None)
    log = tmp_path / "kernel.log"
    monkeypatch.setenv("SHARKAPI_TOKEN", token)
    monkeypatch.setenv("SHARKAPI_BASE_URL", sim.base_url)
    monkeypatch.setenv("CANARY_LOG", str(log))
    monkeypatch.setenv("JOB_401", job_401)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(textwrap.dedent(source).strip())
        for source in NOTEBOOK
    ]
    notebook.cells[5].metadata["tags"] = ["raises-exception"]

    run_notebook(notebook, tmp_path, timeout=60)
    saved = tmp_path / "run.ipynb"
    nbformat.write(notebook, saved)

    text = saved.read_text()
    logged = log.read_text()
    state = notebook.metadata["widgets"][WIDGET_STATE]["state"]
    htmls = [s["state"].get("value", "") for s in state.values()]
    assert any('data-status="complete"' in h for h in htmls)
    assert any('data-status="error"' in h for h in htmls)
    assert any("refused the token (401)" in h for h in htmls)
    assert "AuthenticationError" in text and "Traceback" in logged
    assert "GET /v1/jobs/" in logged and job_401 in logged
    assert any(r.job_id == job_401 and r.status_code == 200 for r in sim.requests)
    assert token not in text
    assert token not in logged
    assert token not in json.dumps(notebook.metadata)
