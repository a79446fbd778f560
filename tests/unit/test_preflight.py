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


ARGS = {"expected_compute": "CPX", "expected_memory": "NPS4"}
# What a run of an 8B model in a 20 GB image needs (fleetbench.diskplan.DiskNeed.to_dict).
NEED = {"image": "rocm/vllm:x", "image_bytes": 20 * GB, "image_digest": "sha256:aaa",
        "model": "meta-llama/Llama-3.1-8B-Instruct", "model_bytes": 16 * GB,
        "margin_bytes": 10 * GB}


def test_healthy_host(host_utils: types.ModuleType, tmp_path: Path) -> None:
    verdict = judge_probe(probe(host_utils, tmp_path, gpu.GpuState()), ARGS)
    assert verdict["ok"], verdict["problems"]
    assert (verdict["compute_partition"], verdict["memory_partition"],
            verdict["logical_gpus"]) == ("CPX", "NPS4", 64)
    assert verdict["docker_version"] == "28.2.2"


def test_docker_down_and_disk_short_are_problems(host_utils: types.ModuleType,
                                                 tmp_path: Path) -> None:
    verdict = judge_probe(probe(
        host_utils, tmp_path, gpu.GpuState(),
        docker={"rc": 1, "server_version": None, "error": "Cannot connect to the Docker daemon"},
        disk={"free_bytes": 5 * GB, "measured_at": "/var/lib/docker"}),
        {**ARGS, "disk_need": NEED})
    assert not verdict["ok"] and verdict["skip"] == "preflight"  # not the disk alone
    text = " ".join(verdict["problems"])
    assert "Docker engine does not answer" in text and "Cannot connect" in text
    assert ("not enough disk at /var/lib/docker: 46.0 GB needed (image 20.0 GB + model "
            "16.0 GB + margin 10.0 GB), 5.0 GB free") in text


def test_a_host_short_of_disk_alone_is_skipped_for_disk(host_utils: types.ModuleType,
                                                        tmp_path: Path) -> None:
    disk = {"free_bytes": 40 * GB, "measured_at": "/var/lib/docker", "device": 1}
    verdict = judge_probe(probe(host_utils, tmp_path, gpu.GpuState(), disk=disk),
                          {**ARGS, "disk_need": NEED})
    assert (verdict["ok"], verdict["skip"]) == (False, "disk")
    assert verdict["problems"] == [
        "not enough disk at /var/lib/docker: 46.0 GB needed (image 20.0 GB + model 16.0 GB + "
        "margin 10.0 GB), 40.0 GB free — free space there (docker image prune removes unused "
        "images), or point fleetbench_model_cache at a larger disk"]
    assert verdict["disk"] == [{"path": "/var/lib/docker", "needed_bytes": 46 * GB,
                                "free_bytes": 40 * GB, "image_bytes": 20 * GB,
                                "model_bytes": 16 * GB, "margin_bytes": 10 * GB}]
    # The role's margin decides on the host: with 2 GB the same host has room.
    roomy = judge_probe(probe(host_utils, tmp_path, gpu.GpuState(), disk=disk),
                        {**ARGS, "disk_need": NEED, "disk_margin_gb": "2"})
    assert roomy["ok"] and roomy["skip"] is None, roomy["problems"]


def test_check_reports_free_disk_without_judging_it(host_utils: types.ModuleType,
                                                    tmp_path: Path) -> None:
    verdict = judge_probe(probe(host_utils, tmp_path, gpu.GpuState(),
                                disk={"free_bytes": 1 * GB, "measured_at": "/var/lib/docker"}),
                          ARGS)
    assert verdict["ok"] and verdict["free_disk_gb"] == 1.0 and verdict["disk"] == []


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
