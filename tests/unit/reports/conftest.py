"""The MAD report files of every era (``tests/fixtures/mad``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def mad_dir(fixtures_dir: Path) -> Path:
    """The read-only MAD fixture folder."""
    return fixtures_dir / "mad"


@pytest.fixture
def mad_copy(mad_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the MAD fixture folder."""
    return Path(shutil.copytree(mad_dir, tmp_path / "mad"))
