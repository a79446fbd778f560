"""A lab whose address another process holds starts nothing: no engine, registry or hub is
left behind by a lab that could not come up."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleetbench.errors import LabError
from fleetbench.lab import fleet


def test_a_taken_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabError, match=r"127\.0\.0\.1:\d+ is already taken"):
            fleet.up(tmp_path / "lab", hosts=1, first_address="127.0.0.1", port=port)
    assert not (tmp_path / "lab" / fleet.LAB_FILE).exists()
    assert not (tmp_path / "lab" / "hub").exists()
