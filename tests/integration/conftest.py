"""The lab: real sshd hosts, the real Docker engine and registry, real playbooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli


class LabFleet:
    """A running lab and helpers to change it from tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inventory = root / "inventory.yml"

    def set(self, host: str, *settings: str) -> None:
        """``fleetbench lab set`` (asserting it worked)."""
        done = run_cli("lab", "set", "--dir", self.root, host, *settings)
        assert done.returncode == 0, done.stderr

    def status(self) -> dict[str, object]:
        """``fleetbench lab status --json``."""
        done = run_cli("lab", "status", "--dir", self.root, "--json")
        assert done.returncode == 0, done.stderr
        data: dict[str, object] = json.loads(done.stdout)
        return data

    def restore(self, host: str) -> None:
        """Back to a healthy CPX/NPS4 host with a working benchmark."""
        self.set(host, "sshd=running", "compute=CPX", "memory=NPS4", "partitions=64",
                 "busy=false", "bench=ok", "factor=1.0")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    """A 3-host lab for the whole session, removed at the end."""
    root = tmp_path_factory.mktemp("lab")
    # Its own loopback range, so a lab a developer keeps running does not collide.
    done = run_cli("lab", "up", "--dir", root, "--hosts", "3", "--first-address", "127.0.1.11",
                   timeout=900)
    assert done.returncode == 0, f"lab up failed:\n{done.stdout}\n{done.stderr}"
    yield LabFleet(root)
    down = run_cli("lab", "down", "--dir", root)
    assert down.returncode == 0, down.stderr
