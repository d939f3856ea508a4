"""`JobWidget` against the simulator, without a browser."""

import math
import time

import ipywidgets
import pytest

from shark_widgets import JobNotFoundError, JobWidget
from shark_widgets.images import image_size

from .conftest import INTERVAL


def watch(sim, client, prompt, **kwargs):
    """A widget on a new job, recording every status it shows."""
    job_id = sim.create_job(prompt, **kwargs)
    widget = JobWidget(job_id, client, interval=INTERVAL)
    seen = [widget.status]
    widget.observe(lambda change: seen.append(change["new"]), "status")
    return widget, seen


def wait_until(predicate, deadline=5.0):
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_a_widget_is_an_ipywidgets_box_that_composes(client, sim):
    widget, _ = watch(sim, client, "a shark in a box")

    assert isinstance(widget, ipywidgets.Box)
    ipywidgets.HBox([widget, ipywidgets.Label("beside")])
    widget.close()


def test_creating_the_widget_returns_before_the_job_is_read(client, sim):
    job_id = sim.create_job("a shark that takes its time", processing=math.inf)

    widget = JobWidget(job_id, client, interval=INTERVAL)

    assert widget.status == "unread"
    wait_until(lambda: widget.status == "processing")
    widget.close()


def test_complete_job_goes_through_each_status_and_shows_its_image(client, sim):
    widget, seen = watch(
        sim, client, "a lemon shark", mode="2k", queued=0.3, processing=0.3
    )

    job = widget.wait(timeout=10)

    assert seen == ["unread", "queued", "processing", "complete"]
    assert job.status == "complete"
    assert image_size(widget.image) == (2048, 2048)
    assert image_size(widget._image.value)[0] <= 512
    assert widget._image.layout.display is None
    assert 'data-status="complete"' in widget._header.value
    assert "$0.02" in widget._header.value
    assert widget.done


def test_failed_job_shows_the_services_error(client, sim):
    widget, seen = watch(sim, client, "a shark [fail]", queued=0.1, processing=0.1)

    job = widget.wait(timeout=10)

    assert job.status == "failed" and seen[-1] == "failed"
    assert "Generation service timeout" in widget._body.value
    assert 'class="shark-error"' in widget._body.value
    assert widget.image is None and widget._image.layout.display == "none"


def test_moderated_job_shows_a_notice(client, sim):
    widget, seen = watch(sim, client, "a shark [moderate]", queued=0.1, processing=0.1)

    job = widget.wait(timeout=10)

    assert job.status == "moderated" and seen[-1] == "moderated"
    assert "content moderation" in widget._body.value
    assert widget.image is None


def test_polling_ends_at_a_terminal_state(client, sim):
    widget, _ = watch(sim, client, "a shark that ends", queued=0.0, processing=0.1)
    widget.wait(timeout=10)
    polls = sim.polls(widget.job_id)

    time.sleep(INTERVAL * 6)

    assert sim.polls(widget.job_id) == polls


def test_stop_really_stops_requests(client, sim):
    widget, _ = watch(sim, client, "a shark forever", queued=0.0, processing=math.inf)
    wait_until(lambda: widget.status == "processing")

    widget.stop()
    polls = sim.polls(widget.job_id)
    time.sleep(INTERVAL * 6)

    assert sim.polls(widget.job_id) == polls
    assert widget.status == "processing"
    assert "not watching" in widget._header.value
    assert widget.wait(timeout=0).status == "processing"


def test_close_stops_requests_and_closes_the_parts(client, sim):
    widget, _ = watch(sim, client, "a shark to close", processing=math.inf)
    wait_until(lambda: widget.status == "processing")
    parts = list(widget.children)

    widget.close()
    polls = sim.polls(widget.job_id)
    time.sleep(INTERVAL * 6)

    assert sim.polls(widget.job_id) == polls
    assert all(part.comm is None for part in parts)


def test_wait_raises_timeout_while_the_job_runs(client, sim):
    widget, _ = watch(sim, client, "a patient shark", processing=math.inf)

    with pytest.raises(TimeoutError):
        widget.wait(timeout=0.1)
    widget.close()


def test_an_unknown_job_ends_with_an_error(client):
    widget = JobWidget("job_000000000000", client, interval=INTERVAL)

    with pytest.raises(JobNotFoundError):
        widget.wait(timeout=10)
    assert widget.status == "error"
    assert "not found" in widget.message


def test_submit_shows_the_prompt_and_mode_at_once(client, sim):
    widget = JobWidget.submit("a <b>bold</b> shark", mode="2k", client=client)

    assert widget.status == "queued"
    assert "a &lt;b&gt;bold&lt;/b&gt; shark" in widget._body.value
    assert "2k" in widget._header.value
    widget.wait(timeout=10)


def test_save_writes_the_full_image(client, sim, tmp_path):
    widget, _ = watch(sim, client, "a shark to keep", queued=0.0, processing=0.05)
    widget.wait(timeout=10)

    path = widget.save(tmp_path / "shark.jpg")

    assert path.read_bytes() == widget.image


def test_repr_is_plain_text(client, sim):
    widget, _ = watch(sim, client, "a plain shark", queued=0.0, processing=0.05)
    widget.wait(timeout=10)

    assert repr(widget).startswith(f"JobWidget({widget.job_id}: complete, 1k, $0.01")
    assert "<" not in repr(widget)


def test_interval_must_be_positive(client):
    with pytest.raises(ValueError, match="interval"):
        JobWidget("job_1", client, interval=0)
