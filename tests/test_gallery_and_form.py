"""`JobGallery` and `PromptForm` against the simulator."""

from decimal import Decimal

import pytest

from shark_widgets import JobGallery, PromptForm
from shark_widgets.images import image_size

from .conftest import INTERVAL


def test_gallery_follows_a_batch_to_its_end(client, sim):
    gallery = JobGallery(client=client, interval=INTERVAL, columns=3)

    jobs = gallery.submit(["a shark, in ink", "a shark, in oil", "a shark [fail]"])
    ended = gallery.wait(timeout=20)

    assert set(ended) == {job.job_id for job in jobs}
    assert gallery.counts == {"complete": 2, "failed": 1}
    assert len(gallery._grid.children) == 2
    assert "$0.02" in gallery._summary.value
    assert "Generation service timeout" in gallery._problems.value
    first = jobs[0].job_id
    assert image_size(gallery.image(first)) == (1024, 1024)
    assert image_size(gallery._grid.children[0].children[0].value)[0] <= 256
    assert repr(gallery) == "JobGallery(2 complete, 1 failed, $0.02)"
    gallery.close()


def test_gallery_escapes_prompts_in_its_captions(client, sim):
    gallery = JobGallery(client=client, interval=INTERVAL)

    gallery.submit(["<script>alert(1)</script>"])
    gallery.wait(timeout=20)

    caption = gallery._grid.children[0].children[1].value
    assert "<script>" not in caption and "&lt;script&gt;" in caption
    gallery.close()


def test_gallery_stop_ends_polling(client, sim):
    job_id = sim.create_job("a shark that never ends", processing=float("inf"))
    gallery = JobGallery([job_id], client=client, interval=INTERVAL)

    gallery.stop()
    polls = sim.polls(job_id)
    gallery.wait(timeout=1)

    assert sim.polls(job_id) == polls


def test_form_submits_and_shows_the_newest_job_first(client, sim):
    form = PromptForm(client=client, interval=INTERVAL)

    form.prompt.value = "a first shark"
    form.button.click()
    form.prompt.value = "a second shark"
    form.mode.value = "2k"
    form.button.click()

    assert [w.job.prompt for w in form.jobs] == ["a second shark", "a first shark"]
    assert form.jobs[0].job.mode == "2k"
    assert form.jobs[0].wait(timeout=20).cost == Decimal("0.02")
    form.close()


def test_form_shows_a_refusal_and_adds_no_job(sim):
    form = PromptForm(client=sim.client(sim.new_account("0.00")), interval=INTERVAL)

    form.prompt.value = "a shark on credit"
    form.button.click()

    assert form.jobs == []
    assert "402" in form._message.value
    assert not form.button.disabled


def test_form_asks_for_a_prompt_before_sending(client, sim):
    form = PromptForm(client=client)
    before = len(sim.requests)

    form.button.click()

    assert form.jobs == [] and "Type a prompt" in form._message.value
    assert len(sim.requests) == before


def test_gallery_takes_one_string_as_one_prompt(client, sim):
    gallery = JobGallery(client=client, interval=INTERVAL)

    jobs = gallery.submit("a single shark")

    assert [job.prompt for job in jobs] == ["a single shark"]
    gallery.close()


def test_gallery_checks_the_whole_batch_before_sending_any(client, sim):
    gallery = JobGallery(client=client, interval=INTERVAL)
    before = len(sim.requests)

    with pytest.raises(ValueError, match="empty"):
        gallery.submit(["a fine shark", "", "another fine shark"])

    assert len(sim.requests) == before
    assert gallery.jobs == {}


def test_gallery_tiles_keep_the_order_of_submission(client, sim):
    slow = sim.create_job("first, slow", queued=0.0, processing=0.6)
    fast = sim.create_job("second, fast", queued=0.0, processing=0.05)
    gallery = JobGallery([slow, fast], client=client, interval=INTERVAL)

    gallery.wait(timeout=20)

    captions = [tile.children[1].value for tile in gallery._grid.children]
    assert "first, slow" in captions[0] and "second, fast" in captions[1]
    gallery.close()


def test_gallery_names_the_prompt_of_a_refused_job(client, sim):
    gallery = JobGallery(client=client, interval=INTERVAL)

    gallery.submit(["a harbour shark [moderate]"])
    gallery.wait(timeout=20)

    assert "a harbour shark [moderate]" in gallery._problems.value
    with pytest.raises(KeyError):
        gallery.image("job_000000000000")
    gallery.close()
