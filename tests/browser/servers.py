"""Real Jupyter servers on loopback, each in a home of its own."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
OWN_NOTEBOOKS = Path(__file__).parent / "notebooks"

# At 0.5 the quickstart's first job is queued for about 1.3 s and processing
# for about 5 s; read every 2 s, each active status stays on screen 2 s or more.
LIVE_TIME_SCALE = "0.5"

# JupyterLab settings that keep pop-ups off the page: no news, no update check.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def jupyter_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a Jupyter process whose every setting lives in ``home``.

    Without this, workspaces, settings and trust databases leak between runs
    and from the person running the tests. No SharkAPI token is passed on, so
    the notebooks use the local simulator.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SHARKAPI_", "JUPYTER", "JPY_", "IPYTHON"))
    }
    data = home / ".local" / "share" / "jupyter"
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
        JUPYTER_DATA_DIR=str(data),
        JUPYTER_RUNTIME_DIR=str(data / "runtime"),
        IPYTHONDIR=str(home / ".ipython"),
        SHARK_SIM_TIME_SCALE=LIVE_TIME_SCALE,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    for relative, settings in LAB_SETTINGS.items():
        target = home / ".jupyter" / "lab" / "user-settings" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings))
    return env


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, method: str = "GET", timeout: float = 5.0) -> Any:
    """The JSON answer to ``method url`` (None for an empty body)."""
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        body = answer.read()
    return json.loads(body) if body else None


class Server:
    """A server process started for the tests, with its log kept for failures."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        command = [arg.format(port=self.port) for arg in args]
        logger.info("starting %s", " ".join(command))
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def wait_until_up(self, path: str, timeout: float = 90.0) -> None:
        """Return once ``GET path`` gets an HTTP answer; raise with the log if not."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):
                    pass
            except urllib.error.HTTPError:
                pass
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
                continue
            logger.info("%s up after %.1f s", self.url, time.monotonic() - started)
            return
        raise TimeoutError(f"server not up after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log."""
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Terminate the server (it shuts its kernels down) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()


class JupyterServer(Server):
    """``jupyter lab`` serving JupyterLab 4 and Notebook 7 from ``root``."""

    def __init__(self, home: Path, root: Path, env: dict[str, str]) -> None:
        self.root = root
        super().__init__(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.token=",
                "--ServerApp.password=",
                "--ServerApp.disable_check_xsrf=True",
                "--allow-root",
                f"--ServerApp.root_dir={root}",
            ],
            env,
            root,
            home / "jupyter-server.log",
        )

    def copy_notebook(self, source: Path) -> str:
        """Copy ``source`` under a fresh name into the served directory.

        Returns the path the server knows it by. A fresh name per test means
        a fresh kernel session and no state left over from another test.
        """
        name = f"{source.stem}-{uuid.uuid4().hex[:8]}.ipynb"
        shutil.copyfile(source, self.root / name)
        return name

    def sessions(self) -> list[dict[str, Any]]:
        """The server's sessions, as ``GET /api/sessions`` lists them."""
        return get_json(f"{self.url}/api/sessions")

    def session_for(self, path: str) -> dict[str, Any] | None:
        """The session of the notebook at ``path``, if it has one."""
        return next((s for s in self.sessions() if s["path"] == path), None)

    def wait_for_kernel(self, path: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the page's kernel for ``path`` is connected and idle.

        The page's own indicator says idle too early on first load, and
        keys pressed then are dropped; the server's view is reliable.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            session = self.session_for(path)
            kernel = (session or {}).get("kernel") or {}
            if kernel.get("connections", 0) >= 1 and (
                kernel.get("execution_state") == "idle"
            ):
                return kernel
            time.sleep(0.2)
        raise TimeoutError(f"no idle kernel for {path} after {timeout} s")

    def end_session(self, path: str) -> None:
        """Delete the session of ``path`` (shutting its kernel down), if any."""
        session = self.session_for(path)
        if session is not None:
            get_json(f"{self.url}/api/sessions/{session['id']}", method="DELETE")


class VoilaServer(Server):
    """``voila`` serving one notebook as an app."""

    def __init__(self, home: Path, notebook: Path, env: dict[str, str]) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "voila",
                notebook.name,
                "--no-browser",
                "--port={port}",
                "--Voila.ip=127.0.0.1",
                "--Voila.port_retries=0",
            ],
            env,
            notebook.parent,
            home / "voila.log",
        )
