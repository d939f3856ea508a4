"""The Binder set-up: an environment built from ``binder/`` alone runs every notebook.

Binder (repo2docker) clones the repository, runs ``pip install -r
binder/requirements.txt`` from its root, then ``binder/postBuild`` if there is
one. This test does the same in a fresh virtual environment, from a copy of
what a clone holds, and executes each notebook of ``notebooks/`` headlessly.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from .browser.headless import HEADLESS_TIME_SCALE
from .browser.servers import ROOT, jupyter_env

logger = logging.getLogger(__name__)

LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "artifacts", "build", "dist", "*.egg-info", "__pycache__"
)


def clone_of_repository(target: Path) -> Path:
    """Copy the files a clone would hold: tracked ones and new, unignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        shutil.copytree(ROOT, target, ignore=LEFT_OUT)
        return target
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> None:
    """Run ``command``; on failure, show what it printed."""
    started = time.monotonic()
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    logger.info(
        "%s: %.1f s", " ".join(map(str, command[:4])), time.monotonic() - started
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_an_environment_built_from_binder_runs_every_notebook(tmp_path):
    repo = clone_of_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    bin_dir = venv / "bin"
    # The machine's pip settings and cache stay; nothing of the test's own
    # environment (its virtualenv, an editable checkout on PYTHONPATH) leaks in.
    build_env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    build_env["PATH"] = f"{bin_dir}{os.pathsep}{build_env.get('PATH', '')}"

    run([sys.executable, "-m", "venv", venv], repo, build_env)
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet"]
    run([*pip, "-r", "binder/requirements.txt"], repo, build_env)
    if (repo / "binder" / "postBuild").exists():
        run(["bash", "binder/postBuild"], repo, build_env)

    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks to run"
    executed = tmp_path / "executed"
    run_env = jupyter_env(
        tmp_path / "home", SHARK_SIM_TIME_SCALE=HEADLESS_TIME_SCALE
    ) | {"PATH": build_env["PATH"]}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        run_env.pop(name, None)
    nbconvert = [bin_dir / "jupyter", "nbconvert", "--to", "notebook", "--execute"]
    options = ["--ExecutePreprocessor.timeout=300", "--output-dir", executed]
    run([*nbconvert, *options, *notebooks], repo, run_env)

    for source in notebooks:
        notebook = nbformat.read(executed / source.name, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.execution_count for cell in code), source.name
        errors = [
            output
            for cell in code
            for output in cell.outputs
            if output.output_type == "error"
        ]
        assert not errors, f"{source.name}: {errors}"
