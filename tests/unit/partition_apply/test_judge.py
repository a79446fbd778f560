"""What apply decides about a host before touching it, from what the role's probe reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbench.errors import BadInput
from fleetbench.lab import gpu, smi
from fleetbench.partition.apply import judge_host

CPX_NPS4 = {"compute": "CPX", "memory": "NPS4"}
Probe = Callable[..., dict[str, Any]]


def docker_ps(*containers: dict[str, str]) -> dict[str, Any]:
    """What `docker ps --format '{{json .}}'` prints for these containers."""
    lines = [json.dumps({"Command": '"sleep 60"', "CreatedAt": "2025-01-01 00:00:00 +0000 UTC",
                         "Labels": "", "Mounts": "", "Networks": "host", "Ports": "",
                         "State": "running", **c}) for c in containers]
    return {"rc": 0, "stdout": "".join(f"{line}\n" for line in lines), "stderr": ""}


def test_lab_busy_host_shows_its_gpu_client_in_kfd_and_proc(make_host: Callable[..., Path],
                                                           probe_module: Any) -> None:
    idle, busy = make_host(), make_host(busy="true")
    assert probe_module.kfd_processes(str(idle / "root")) == []
    (client,) = probe_module.kfd_processes(str(busy / "root"))
    assert client["pid"] == gpu.busy_pid(gpu.host_seed(busy))
    assert client["comm"] == "python3\n"
    assert client["cmdline"].split("\0")[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    # The KFD entry holds per-GPU files like the real one; it goes when the client stops.
    entry = busy / "root/sys/class/kfd/kfd/proc" / str(client["pid"])
    assert len(list(entry.glob("vram_*"))) == 64
    state = gpu.GpuState.load(busy / gpu.STATE_FILE).with_settings({"busy": "false"})
    smi.render_host(busy, state)
    assert probe_module.kfd_processes(str(busy / "root")) == []
    assert not (busy / "root/proc" / str(client["pid"])).exists()


def test_spx_nps1_host_gets_a_plan(make_host: Callable[..., Path], probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    judged = judge_host(probe_of(host), CPX_NPS4)
    assert judged["problems"] == []
    assert judged["refused"] is False
    assert judged["current"] == {"compute": ["SPX"], "memory": ["NPS1"]}
    assert judged["plan"]["steps"] == [{"kind": "compute", "mode": "CPX"},
                                       {"kind": "memory", "mode": "NPS4"}]
    assert [t["tool"] for t in judged["plan"]["tools"]] == ["amd-smi", "rocm-smi"]
    assert judged["plan"]["rocm_version"] == "6.4.1-83"
    assert judged["verdict"]["ok"] is False  # before the change it does not match


def test_busy_host_is_refused_and_its_users_listed(make_host: Callable[..., Path],
                                                   probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1", busy="true")
    running = docker_ps({"ID": "4f2a", "Names": "vllm-server", "Image": "rocm/vllm:latest",
                         "Status": "Up 3 hours"})
    judged = judge_host(probe_of(host, docker_ps=running), CPX_NPS4)
    assert judged["refused"] is True
    assert judged["problems"] == []
    pid = gpu.busy_pid(gpu.host_seed(host))
    assert judged["processes"] == [{"pid": pid, "name": "python3", "command":
                                    "python3 -m vllm.entrypoints.openai.api_server --port 8000"}]
    assert judged["containers"] == [{"id": "4f2a", "name": "vllm-server",
                                     "image": "rocm/vllm:latest", "status": "Up 3 hours"}]
    assert f"python3 (pid {pid})" in judged["refusal"]
    assert "vllm-server (rocm/vllm:latest)" in judged["refusal"]


def test_a_container_alone_blocks_a_change(make_host: Callable[..., Path],
                                           probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    running = docker_ps({"ID": "9c1d", "Names": "exporter", "Image": "amd/exporter",
                         "Status": "Up 2 days"})
    judged = judge_host(probe_of(host, docker_ps=running), CPX_NPS4)
    assert judged["refused"] is True
    assert judged["processes"] == []


def test_users_do_not_matter_when_nothing_changes(make_host: Callable[..., Path],
                                                  probe_of: Probe) -> None:
    host = make_host(busy="true")  # already CPX/NPS4
    judged = judge_host(probe_of(host), CPX_NPS4)
    assert judged["plan"]["steps"] == []
    assert judged["refused"] is False
    assert judged["processes"]  # still reported
    assert judged["verdict"]["ok"] is True


def test_docker_that_does_not_answer_is_a_problem(make_host: Callable[..., Path],
                                                  probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    down = {"rc": 1, "stdout": "", "stderr": "Cannot connect to the Docker daemon at "
            "unix:///var/run/docker.sock. Is the docker daemon running?\n"}
    judged = judge_host(probe_of(host, docker_ps=down), CPX_NPS4)
    assert judged["refused"] is False
    assert any("Cannot connect to the Docker daemon" in p for p in judged["problems"])


def test_no_docker_installed_is_only_a_warning(make_host: Callable[..., Path],
                                               probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    judged = judge_host(probe_of(host, docker_ps={"rc": 127, "stdout": "", "stderr": ""}),
                        CPX_NPS4)
    assert judged["problems"] == []
    assert any("docker is not installed" in w for w in judged["warnings"])


def test_an_unreadable_host_cannot_be_planned(tmp_path: Path, probe_of: Probe) -> None:
    empty = tmp_path / "bare"
    (empty / "root/opt/rocm/.info").mkdir(parents=True)
    (empty / "root/opt/rocm/.info/version").write_text("6.4.1-83\n")
    judged = judge_host(probe_of(empty), CPX_NPS4)
    assert judged["plan"]["steps"] == []
    assert any("current compute and memory partition is unknown" in p
               for p in judged["problems"])


def test_a_change_without_any_tool_is_a_problem(make_host: Callable[..., Path],
                                                probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    judged = judge_host(probe_of(host, tools={"amd-smi": None, "rocm-smi": None}), CPX_NPS4)
    assert any("Neither amd-smi nor rocm-smi" in p for p in judged["problems"])


def test_a_mode_the_hardware_does_not_offer_is_a_problem(make_host: Callable[..., Path],
                                                         probe_of: Probe) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    probe = probe_of(host)
    for device in probe["raw"]["sysfs_devices"]:  # an MI300A-like part: no NPS4
        device["files"]["available_memory_partition"] = "NPS1\n"
    judged = judge_host(probe, CPX_NPS4)
    assert any("do(es) not offer memory partition NPS4" in p for p in judged["problems"])


def test_mixed_gpus_are_planned_from_every_mode_they_show(make_host: Callable[..., Path],
                                                          probe_of: Probe) -> None:
    host = make_host(compute="CPX", memory="NPS4")
    probe = probe_of(host)
    probe["raw"]["sysfs_devices"][0]["files"]["current_memory_partition"] = "NPS1\n"
    judged = judge_host(probe, {"compute": "SPX", "memory": "NPS1"})
    assert judged["current"] == {"compute": ["CPX"], "memory": ["NPS1", "NPS4"]}
    assert judged["plan"]["steps"] == [{"kind": "memory", "mode": "NPS1"},
                                       {"kind": "compute", "mode": "SPX"}]


@pytest.mark.parametrize("target", [{"compute": "SPX", "memory": "NPS4"},
                                    {"compute": "XPX", "memory": "NPS4"}])
def test_an_impossible_target_is_bad_input(make_host: Callable[..., Path], probe_of: Probe,
                                           target: dict[str, str]) -> None:
    with pytest.raises(BadInput):
        judge_host(probe_of(make_host()), target)
