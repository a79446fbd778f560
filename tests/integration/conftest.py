"""The lab: real sshd hosts, the real Docker engine and registry, real playbooks."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from tests.conftest import run_cli

# The labs' loopback network: 127.<N>.<lab>.11 and up. FLEETBENCH_TEST_LAB_NET=127.5 lets
# two test sessions on one machine (or a lab a developer keeps running) never collide.
LAB_NET = os.environ.get("FLEETBENCH_TEST_LAB_NET", "127.0")

#: Lab numbers each pytest-xdist worker owns: worker gw<k> uses 1 + k·LABS_PER_WORKER and up,
#: so labs of parallel workers never share an address.
LABS_PER_WORKER = 16


def _worker_index() -> int:
    """This process's pytest-xdist worker number (0 without xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


#: Where this test session's labs live (pytest's base temporary folder): other sessions'
#: labs on the machine run containers of their own.
SESSION_ROOT: list[Path] = []


def mounted_from(mounts: object, *roots: Path) -> bool:
    """Whether a container (by its ``Mounts`` from the Docker API) bind-mounts something
    under one of ``roots``."""
    sources = [str(m.get("Source", "")) for m in mounts or () if isinstance(m, dict)]
    return any(source.startswith(str(root)) for root in roots for source in sources)


def of_this_session(mounts: object) -> bool:
    """Whether a container belongs to this session: its bind mounts are under the session's
    labs. Other sessions, and the other xdist worker, run lab hosts of the same names on the
    same engine."""
    return mounted_from(mounts, *SESSION_ROOT)


@pytest.fixture(scope="session", autouse=True)
def _session_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    SESSION_ROOT[:] = [tmp_path_factory.getbasetemp().resolve()]


def lab_address(lab: int) -> str:
    """The first host address of the test session's lab number ``lab`` (1 … LABS_PER_WORKER)."""
    assert 1 <= lab < LABS_PER_WORKER, lab
    return f"{LAB_NET}.{lab + _worker_index() * LABS_PER_WORKER}.11"


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
                 "busy=false", "bench=ok", "factor=1.0", "fail_after=0", "perf_csv=written",
                 "garbage=none")


def _lab(factory: pytest.TempPathFactory, name: str, hosts: int, first: str
         ) -> Iterator[LabFleet]:
    root = factory.mktemp(name)
    # Its own loopback range, so a lab a developer keeps running does not collide.
    done = run_cli("lab", "up", "--dir", root, "--hosts", str(hosts), "--first-address", first,
                   timeout=900)
    assert done.returncode == 0, f"lab up failed:\n{done.stdout}\n{done.stderr}"
    yield LabFleet(root)
    down = run_cli("lab", "down", "--dir", root)
    assert down.returncode == 0, down.stderr
    assert not any(root.iterdir()), "lab down left files behind"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    """A 3-host lab for the check tests, removed at the end."""
    yield from _lab(tmp_path_factory, "lab", 3, lab_address(1))


@pytest.fixture(scope="session")
def run_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    """A 4-host lab for the rollout tests, removed at the end."""
    yield from _lab(tmp_path_factory, "runlab", 4, lab_address(2))


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: a registry, hub or git server out of reach."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline_ref(run_lab: LabFleet) -> Iterator[str]:
    """The lab image tagged under a registry address that does not answer."""
    lab_image = yaml.safe_load(run_lab.inventory.read_text())["all"]["vars"]["fleetbench_image"]
    repository = f"127.0.0.1:{closed_port()}/offline/rocm/vllm"
    client = docker.from_env()
    try:
        client.images.get(lab_image).tag(repository, "staged")
        yield f"{repository}:staged"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{repository}:staged")
        client.close()
