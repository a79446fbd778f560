"""Fleet-report tests never touch the user's history database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the default history database into this test's tmp_path."""
    db = tmp_path / "state" / "history.sqlite"
    monkeypatch.setenv("FLEETBENCH_HISTORY", str(db))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    yield db
