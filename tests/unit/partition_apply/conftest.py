"""Fixtures for partition apply: real SMI captures, lab hosts, the role's probe module."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fleetbench.lab import gpu, smi
from fleetbench.partition.apply import Command, CommandRun
from tests.conftest import module_util


@pytest.fixture(scope="session")
def smi_fixture(fixtures_dir: Path) -> Callable[[str], str]:
    """The text of one real capture in tests/fixtures/smi (read-only)."""
    return lambda name: (fixtures_dir / "smi" / name).read_text(encoding="utf-8")


@pytest.fixture
def make_host(tmp_path: Path) -> Callable[..., Path]:
    """A simulated MI300X host directory with the given lab settings (no set delay)."""
    counter = iter(range(1000))

    def make(**settings: str) -> Path:
        host_dir = tmp_path / f"lab{next(counter):02d}"
        state = gpu.GpuState().with_settings({"set_delay": "0", **settings})
        state.save(host_dir / gpu.STATE_FILE)
        smi.render_host(host_dir, state)
        return host_dir

    return make


def lab_state(host_dir: Path) -> gpu.GpuState:
    """The host's GPU state as the simulators left it."""
    return gpu.GpuState.load(host_dir / gpu.STATE_FILE)


@pytest.fixture
def lab_runner() -> Callable[[Path], Callable[[Command], CommandRun]]:
    """Run commands on a lab host through its simulated amd-smi / rocm-smi (in-process).

    The command's first word names the tool, as the absolute paths the probe finds do.
    """

    def runner(host_dir: Path) -> Callable[[Command], CommandRun]:
        def run(command: Command) -> CommandRun:
            tool = Path(command.argv[0]).name
            out, err = io.StringIO(), io.StringIO()
            console = smi.Console(out=out, err=err, inp=io.StringIO(command.stdin))
            code = smi.run(tool, list(command.argv[1:]), host_dir, console)
            return CommandRun(code, out.getvalue(), err.getvalue())

        return run

    return runner


@pytest.fixture(scope="session")
def host_utils() -> ModuleType:
    """module_utils/fleetbench_host.py, importable as Ansible packs it for a module."""
    return module_util("fleetbench_host")


@pytest.fixture(scope="session")
def probe_module(host_utils: ModuleType) -> ModuleType:
    """module_utils/fleetbench_probe.py: the probes' host code (piped or in the modules)."""
    module_util("fleetbench_run")
    return module_util("fleetbench_probe")


@pytest.fixture
def probe_of(probe_module: ModuleType, host_utils: ModuleType) -> Callable[..., dict[str, Any]]:
    """What the probe module gathers on a lab host (files read for real; docker given)."""

    def probe(host_dir: Path, docker_ps: dict[str, Any] | None = None,
              tools: dict[str, str | None] | None = None) -> dict[str, Any]:
        root = str(host_dir / "root")
        return {
            "raw": {
                "sysfs_devices": host_utils.sysfs_devices(root),
                "kfd_nodes": host_utils.kfd_nodes(root),
                "smi": [],
            },
            "kfd_processes": probe_module.kfd_processes(root),
            "docker_ps": docker_ps or {"rc": 0, "stdout": "", "stderr": ""},
            "tools": tools if tools is not None else {
                "amd-smi": str(host_dir / "bin" / "amd-smi"),
                "rocm-smi": str(host_dir / "bin" / "rocm-smi"),
            },
            "rocm_version": (host_dir / "root/opt/rocm/.info/version").read_text().strip(),
            "driver_version": None,
        }

    return probe
