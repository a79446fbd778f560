"""`fleetbench partition show|apply` on a 3-host lab over real SSH (playbooks/partition.yml)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FLEETBENCH, run_cli
from tests.integration.conftest import LabFleet, _lab, lab_address

# One lab for the whole module: its tests stay on one pytest-xdist worker.
pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("partition_apply")]

HOSTS = ("lab01", "lab02", "lab03")
TARGET = ("--compute", "CPX", "--memory", "NPS4")


@pytest.fixture(scope="module")
def plab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    """Three hosts on the session's lab 3 whose set operations take 0.2 s."""
    for lab in _lab(tmp_path_factory, "partitionlab", 3, lab_address(3)):
        for host in HOSTS:
            lab.set(host, "set_delay=0.2")
        yield lab


def gpu_states(lab: LabFleet) -> dict[str, tuple[str, str]]:
    """Each host's (compute, memory) as the simulated driver holds it."""
    hosts: list[dict[str, Any]] = lab.status()["hosts"]  # type: ignore[assignment]
    return {h["name"]: (h["gpu"]["compute"], h["gpu"]["memory"]) for h in hosts}


def reset(lab: LabFleet, *settings: str) -> None:
    """Every host back to an idle SPX/NPS1 MI300X on ROCm 6.4 with the given changes."""
    for host in HOSTS:
        lab.set(host, "compute=SPX", "memory=NPS1", "busy=false", "noperm=false", "rocm=6.4")
    for item in settings:
        host, setting = item.split(":", 1)
        lab.set(host, setting)


def apply_json(lab: LabFleet, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_cli("partition", "apply", "-i", lab.inventory, *TARGET, "--yes", "--json", *extra,
                   timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_apply_turns_spx_nps1_into_cpx_nps4_and_check_agrees(plab: LabFleet) -> None:
    reset(plab, "lab02:rocm=7.0")
    code, report = apply_json(plab, "--limit", "lab01:lab02", "--serial", "2")
    assert code == 0, report
    assert report["ok"] and not report["roll_stopped"]
    lab01, lab02 = report["hosts"]["lab01"], report["hosts"]["lab02"]
    for host in (lab01, lab02):
        assert host["status"] == "ok"
        assert host["changed"] is True
        assert host["before"]["compute_partition"] == "SPX"
        assert host["after"] == {"compute_partition": "CPX", "memory_partition": "NPS4",
                                 "logical_gpus": 64, "partition_memory_bytes": 25767706624}
    assert [(s["step"], s["mode"], s["outcome"]) for s in lab01["steps"]] == [
        ("compute", "CPX", "ok"), ("memory", "NPS4", "ok")]
    # ROCm 7: amd-smi set -M waits for a driver reload, which apply does.
    assert [(s["step"], s["outcome"]) for s in lab02["steps"]] == [
        ("compute", "ok"), ("memory", "ok"), ("reload", "ok")]
    assert lab02["steps"][-1]["command"].endswith("amd-smi reset -r")
    assert gpu_states(plab) == {"lab01": ("CPX", "NPS4"), "lab02": ("CPX", "NPS4"),
                                "lab03": ("SPX", "NPS1")}

    checked = run_cli("check", "-i", plab.inventory, "--limit", "lab01:lab02", "--json")
    assert checked.returncode == 0, checked.stdout
    assert {h["status"] for h in json.loads(checked.stdout)["hosts"].values()} == {"ok"}

    # Applying again changes nothing and still verifies.
    code, again = apply_json(plab, "--limit", "lab01")
    assert code == 0
    assert again["hosts"]["lab01"]["status"] == "ok"
    assert again["hosts"]["lab01"]["changed"] is False


def test_busy_hosts_are_refused_listed_and_left_untouched(plab: LabFleet) -> None:
    reset(plab, "lab03:busy=true")
    image = str(plab.status()["image"])
    bench_env = plab.root / "hosts" / "lab02" / "bench.env"
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", "host", "--name",
         f"fleetbench-partition-test-{os.getpid()}", "-v",
         f"{bench_env}:/fleetbench-lab/bench.env:ro", image, "sleep", "120"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert container.returncode == 0, container.stderr
    try:
        code, report = apply_json(plab, "--serial", "1")
    finally:
        subprocess.run(["docker", "rm", "-f", container.stdout.strip()], capture_output=True,
                       check=False, timeout=60)
    assert code == 1
    hosts = report["hosts"]
    assert hosts["lab01"]["status"] == "ok"  # a refusal does not stop the roll
    assert not report["roll_stopped"]
    lab02, lab03 = hosts["lab02"], hosts["lab03"]
    assert lab02["status"] == lab03["status"] == "skipped:busy"
    assert lab02["steps"] == lab03["steps"] == []
    assert [c["name"] for c in lab02["containers"]] == [f"fleetbench-partition-test-{os.getpid()}"]
    assert lab02["processes"] == []
    assert [(p["name"], p["command"].split()[:3]) for p in lab03["processes"]] == [
        ("python3", ["python3", "-m", "vllm.entrypoints.openai.api_server"])]
    assert "python3 (pid" in lab03["problems"][0]
    assert gpu_states(plab) == {"lab01": ("CPX", "NPS4"), "lab02": ("SPX", "NPS1"),
                                "lab03": ("SPX", "NPS1")}


def test_a_failing_batch_stops_the_roll(plab: LabFleet) -> None:
    reset(plab, "lab01:noperm=true")
    code, report = apply_json(plab, "--serial", "1")
    assert code == 1
    assert report["roll_stopped"] is True
    lab01 = report["hosts"]["lab01"]
    assert lab01["status"] == "failed:compute"
    assert [s["outcome"] for s in lab01["steps"]] == ["no_perm"]
    assert "AMDSMI_STATUS_NO_PERM" in lab01["problems"][0]
    for later in ("lab02", "lab03"):
        assert report["hosts"][later]["status"] == "skipped:roll-stopped"
        assert report["hosts"][later]["steps"] == []
    assert set(gpu_states(plab).values()) == {("SPX", "NPS1")}


def test_show_reports_verdicts_and_drift(plab: LabFleet) -> None:
    reset(plab, "lab01:compute=CPX", "lab01:memory=NPS4", "lab02:rocm=7.0")
    done = run_cli("partition", "show", "-i", plab.inventory, "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    hosts = report["hosts"]
    assert {name: h["status"] for name, h in hosts.items()} == {
        "lab01": "ok", "lab02": "failed", "lab03": "failed"}
    lab01 = hosts["lab01"]
    assert (lab01["compute_partition"], lab01["memory_partition"]) == ("CPX", "NPS4")
    assert (lab01["logical_gpus"], lab01["physical_gpus"]) == (64, 8)
    assert lab01["partition_memory_bytes"] == 25767706624
    assert lab01["expected"] == "CPX/NPS4"
    assert set(lab01["sources"]) == {"sysfs", "kfd", "amd-smi", "rocm-smi"}
    assert lab01["sources"]["kfd"]["logical_gpus"] == 64
    assert any("expected CPX" in p for p in hosts["lab02"]["problems"])
    drift = report["drift"]
    assert drift["compute_partition"] == {"SPX": 2, "CPX": 1}
    assert drift["rocm_version"] == {"6.4.1-83": 2, "7.0.2-56": 1}
    assert drift["driver_version"] == {"6.12.12": 2, "6.14.14": 1}
    assert "compute_partition" in drift["drifted"]

    only_ok = run_cli("partition", "show", "-i", plab.inventory, "--limit", "lab01")
    assert only_ok.returncode == 0, only_ok.stderr
    assert "lab01" in only_ok.stdout and "CPX" in only_ok.stdout and "lab02" not in only_ok.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--compute", "XPX", "--memory", "NPS4", "--yes"), "unknown compute partition"),
        (("--compute", "CPX", "--memory", "NPS3", "--yes"), "unknown memory partition"),
        (("--compute", "SPX", "--memory", "NPS4", "--yes"), "not a valid partition combination"),
        (("--compute", "DPX", "--memory", "NPS4", "--yes"), "not a valid partition combination"),
        ((*TARGET, "--yes", "--serial", "0"), "--serial"),
        ((*TARGET, "--yes", "--limit", "nosuchhost"), "matches no host"),
        (TARGET, "pass --yes"),  # stdin is not a terminal: nobody to ask
    ],
)
def test_bad_input_exits_2_and_touches_nothing(plab: LabFleet, args: tuple[str, ...],
                                               says: str) -> None:
    reset(plab)
    done = subprocess.run(
        [str(FLEETBENCH), "partition", "apply", "-i", str(plab.inventory), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert done.stdout == ""
    assert set(gpu_states(plab).values()) == {("SPX", "NPS1")}


def test_declining_the_confirmation_changes_nothing(plab: LabFleet) -> None:
    reset(plab)
    controller, terminal = os.openpty()
    proc = subprocess.Popen(
        [str(FLEETBENCH), "partition", "apply", "-i", str(plab.inventory), *TARGET],
        stdin=terminal, stderr=terminal, stdout=subprocess.PIPE, close_fds=True,
    )
    os.close(terminal)
    try:
        shown = _read_until(controller, b"[y/n]")
        assert b"CPX/NPS4 on 3 host(s)" in shown
        os.write(controller, b"n\n")
        assert proc.wait(timeout=30) == 2
        assert b"not confirmed" in _read_until(controller, b"answer y")
    finally:
        proc.kill()
        os.close(controller)
    assert set(gpu_states(plab).values()) == {("SPX", "NPS1")}


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            seen += chunk
    assert marker in seen, seen.decode(errors="replace")
    return seen
