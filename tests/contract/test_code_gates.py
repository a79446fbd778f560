"""The code gates CI runs through the test command: ruff over the whole repository (with
the per-file settings in pyproject.toml for the code that runs on targets) and mypy strict
on src/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is part of the test extras: pip install -e '.[test]'"
    return str(path)


def test_ruff_over_the_whole_repository() -> None:
    done = subprocess.run([_tool("ruff"), "check", "--no-cache", "--output-format", "concise",
                           "."], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_mypy_strict_on_the_package() -> None:
    done = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success" in done.stdout
