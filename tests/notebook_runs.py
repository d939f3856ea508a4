"""Executing a notebook in a real kernel, the way nbconvert and CI do."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run_notebook(
    notebook: nbformat.NotebookNode,
    folder: Path,
    *,
    timeout: int = 120,
    store_widget_state: bool = True,
) -> nbformat.NotebookNode:
    """Execute ``notebook`` in place in a fresh ``python3`` kernel in ``folder``."""
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=store_widget_state,
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    return notebook
