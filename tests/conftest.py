"""Shared fixtures: one real simulator over real HTTP for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shark_widgets import SharkClient
from shark_widgets.polling import Poller
from shark_widgets.simulator import SharkSimulator

# Small enough that a job ends within a second, large enough that polls at
# 50 ms see both active statuses.
TIME_SCALE = 0.05
INTERVAL = 0.05


@pytest.fixture(scope="session")
def simulator() -> Iterator[SharkSimulator]:
    with SharkSimulator(time_scale=TIME_SCALE, moderation_words=("forbidden",)) as sim:
        yield sim


@pytest.fixture
def sim(simulator: SharkSimulator) -> Iterator[SharkSimulator]:
    """The session's simulator, with no fault left over from another test."""
    simulator.clear_faults()
    yield simulator
    simulator.clear_faults()


@pytest.fixture
def client(sim: SharkSimulator) -> Iterator[SharkClient]:
    with sim.client() as shark:
        yield shark


@pytest.fixture
def poller() -> Iterator[Poller]:
    """A poller of the test's own, stopped at the end."""
    own = Poller(workers=2, name="test-poller")
    yield own
    own.stop()


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a real token or service from the environment."""
    for name in ("SHARKAPI_TOKEN", "SHARKAPI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert "SHARKAPI_TOKEN" not in os.environ
