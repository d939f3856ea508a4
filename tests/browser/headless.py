"""Running a notebook in a real kernel with no browser, as CI and nbconvert do."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from ..notebook_runs import run_notebook

# Fast jobs for runs where nobody watches the badge move.
HEADLESS_TIME_SCALE = "0.1"


def execute_notebook(
    source: Path,
    target: Path,
    *,
    store_widget_state: bool = True,
    time_scale: str = HEADLESS_TIME_SCALE,
) -> nbformat.NotebookNode:
    """Execute ``source`` in a fresh kernel, save the result at ``target``.

    The kernel gets no SharkAPI token (so the notebook uses the simulator)
    and ``SHARK_SIM_TIME_SCALE=time_scale``.
    """
    notebook = nbformat.read(source, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHARK_SIM_TIME_SCALE", time_scale)
        for name in [n for n in os.environ if n.startswith("SHARKAPI_")]:
            patch.delenv(name)
        run_notebook(notebook, target.parent, store_widget_state=store_widget_state)
    nbformat.write(notebook, target)
    return notebook
