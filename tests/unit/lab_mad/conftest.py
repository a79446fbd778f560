"""Fixtures for the lab's stand-in MAD repository and its benchmark script.

The script must run in the stand-in rocm/vllm image, which has bash and busybox and
nothing else: every run here gets a PATH holding only bash and the busybox applets the
script is allowed to use, and an otherwise empty environment.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetbench.lab.mad import ERA_TAGS, MadRepo, create_mad_repo

BUSYBOX = Path("/usr/bin/busybox")
# The applets the script may use; the image has more, the script needs no others.
APPLETS = ("awk", "mkdir", "mv", "sleep")
NAME = "Llama-3.1-8B-Instruct"


@dataclass(frozen=True)
class Checkout:
    """A clone of the stand-in MAD at a tag, as fleetbench makes on a host."""

    root: Path

    @property
    def workdir(self) -> Path:
        return self.root / "scripts" / "vllm"

    def summary(self, dtype: str = "float16") -> Path:
        return self.workdir / f"reports_{dtype}_vllm_rocm6.4.1" / "summary"

    def perf(self, name: str = NAME) -> Path:
        return self.root / "scripts" / f"perf_{name}.csv"


RunScript = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def mad_repo(tmp_path_factory: pytest.TempPathFactory) -> MadRepo:
    return create_mad_repo(tmp_path_factory.mktemp("mad") / "MAD")


CloneMad = Callable[..., Checkout]


@pytest.fixture
def clone_mad(mad_repo: MadRepo, tmp_path: Path) -> CloneMad:
    """Clone the stand-in MAD at a tag into a fresh directory (one per call)."""
    counter = iter(range(1000))

    def clone(tag: str = ERA_TAGS["D"]) -> Checkout:
        root = tmp_path / f"clone-{next(counter)}" / "MAD"
        subprocess.run(
            ["git", "clone", "-q", "--branch", tag, str(mad_repo.path), str(root)],
            check=True,
            capture_output=True,
        )
        return Checkout(root)

    return clone


@pytest.fixture
def checkout(clone_mad: CloneMad) -> Checkout:
    return clone_mad()


@pytest.fixture(scope="session")
def busybox_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BUSYBOX.is_file(), "the lab needs busybox at /usr/bin/busybox (busybox-static)"
    bash = shutil.which("bash")
    assert bash is not None
    directory = tmp_path_factory.mktemp("busybox-bin")
    (directory / "bash").symlink_to(bash)
    for applet in APPLETS:
        (directory / applet).symlink_to(BUSYBOX)
    return directory


def script_env(
    busybox_bin: Path,
    lab_env: Path,
    *,
    devices: str | None = "0",
    hf_token: str | None = "hf_lab_token",
) -> dict[str, str]:
    """The container's environment: PATH, the lab file, HIP devices, HF token."""
    env = {"PATH": str(busybox_bin), "FLEETBENCH_LAB_ENV": str(lab_env)}
    if devices is not None:
        env["HIP_VISIBLE_DEVICES"] = devices
    if hf_token is not None:
        env["HF_TOKEN"] = hf_token
    return env


@pytest.fixture
def run_script(busybox_bin: Path, checkout: Checkout, tmp_path: Path) -> RunScript:
    """Run ``bash ./vllm_benchmark_report.sh ARGS`` in the checkout, as the playbook does.

    ``bench`` is the lab's bench.env as a mapping (None: no file, as off the lab).
    """
    counter = iter(range(1000))

    def run(
        *args: str,
        bench: Mapping[str, str] | None = None,
        devices: str | None = "0",
        hf_token: str | None = "hf_lab_token",
        where: Checkout | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        lab_env = tmp_path / f"bench-{next(counter)}.env"
        if bench is not None:
            lab_env.write_text("".join(f"{key}={value}\n" for key, value in bench.items()))
        return subprocess.run(
            [str(busybox_bin / "bash"), "./vllm_benchmark_report.sh", *args],
            cwd=(where or checkout).workdir,
            env=script_env(busybox_bin, lab_env, devices=devices, hf_token=hf_token),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
