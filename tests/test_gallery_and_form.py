"""`JobGallery` and `PromptForm` against the simulator."""

from decimal import Decimal

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
