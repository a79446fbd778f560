"""Locate the shared MAD fixture files (``<repo>/../shared/fixtures/mad``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MAD_FIXTURES = REPO.parent / "shared" / "fixtures" / "mad"


@pytest.fixture
def mad_dir() -> Path:
    """The read-only MAD fixture folder."""
    assert MAD_FIXTURES.is_dir(), f"shared fixtures missing at {MAD_FIXTURES}"
    return MAD_FIXTURES


@pytest.fixture
def mad_copy(mad_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the MAD fixture folder."""
    return Path(shutil.copytree(mad_dir, tmp_path / "mad"))
