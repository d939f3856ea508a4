"""The code is formatted and linted: ruff runs as part of the tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_code_is_formatted():
    result = ruff("format", "--check", ".")

    assert result.returncode == 0, result.stdout + result.stderr


def test_code_passes_the_linter():
    result = ruff("check", ".")

    assert result.returncode == 0, result.stdout + result.stderr
