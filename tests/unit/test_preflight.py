"""The preflight verdict on what the probe module read from a (simulated) host."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from fleetbench.lab import gpu, smi
from fleetbench.preflight import judge_probe
from tests.conftest import module_util

GB = 10**9


@pytest.fixture(scope="module")
def host_utils() -> types.ModuleType:
    return module_util("fleetbench_host")


def probe(host_utils: types.ModuleType, tmp_path: Path, state: gpu.GpuState,
          **extra: Any) -> dict[str, Any]:
    host_dir = tmp_path / "host"
    smi.install_host(host_dir, state, sys.executable)
    root = str(host_dir / "root")
    data: dict[str, Any] = {
        "raw": {"sysfs_devices": host_utils.sysfs_devices(root),
                "kfd_nodes": host_utils.kfd_nodes(root), "smi": []},
        "gpu_processes": host_utils.kfd_processes(root),
        "rocm_version": "6.4.1", "docker": {"rc": 0, "server_version": "28.2.2"},
        "disk": {"free_bytes": 500 * GB, "measured_at": "/var/lib/docker"},
    }
    data.update(extra)
    return data


ARGS = {"expected_compute": "CPX", "expected_memory": "NPS4", "min_free_disk_gb": "60"}


def test_healthy_host(host_utils: types.ModuleType, tmp_path: Path) -> None:
    verdict = judge_probe(probe(host_utils, tmp_path, gpu.GpuState()), ARGS)
    assert verdict["ok"], verdict["problems"]
    assert (verdict["compute_partition"], verdict["memory_partition"],
            verdict["logical_gpus"]) == ("CPX", "NPS4", 64)
    assert verdict["docker_version"] == "28.2.2"


def test_docker_down_and_disk_full_are_problems(host_utils: types.ModuleType,
                                                tmp_path: Path) -> None:
    verdict = judge_probe(probe(
        host_utils, tmp_path, gpu.GpuState(),
        docker={"rc": 1, "server_version": None, "error": "Cannot connect to the Docker daemon"},
        disk={"free_bytes": 5 * GB, "measured_at": "/var/lib/docker"}), ARGS)
    assert not verdict["ok"]
    text = " ".join(verdict["problems"])
    assert "Docker engine does not answer" in text and "Cannot connect" in text
    assert "only 5.0 GB free" in text


def test_gpu_users_are_named(host_utils: types.ModuleType, tmp_path: Path) -> None:
    verdict = judge_probe(probe(host_utils, tmp_path, gpu.GpuState(busy=True)), ARGS)
    assert any("using the GPUs" in w for w in verdict["warnings"]), verdict["warnings"]


def test_spx_host_against_cpx_expectation(host_utils: types.ModuleType, tmp_path: Path) -> None:
    state = gpu.GpuState().with_settings({"compute": "SPX", "memory": "NPS1"})
    verdict = judge_probe(probe(host_utils, tmp_path, state), ARGS)
    assert not verdict["ok"] and verdict["compute_partition"] == "SPX"
    spx_ok = judge_probe(probe(host_utils, tmp_path, state),
                         {**ARGS, "expected_compute": "SPX", "expected_memory": "NPS1"})
    assert spx_ok["ok"], spx_ok["problems"]
