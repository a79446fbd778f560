"""Slot → physical GPU against the real KFD topology of an 8 x MI300X CPX host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetbench.gpus import gpu_model, logical_gpus, parse_visible_devices, slot_gpus
from fleetbench.lab.gpu import GpuState, physical_gpus
from fleetbench.lab.smi import render_host
from fleetbench.preflight import judge_probe
from tests.conftest import FIXTURES, module_util

NODES = FIXTURES / "kfd" / "mi300x-8gpu-cpx" / "topology" / "nodes"
# The first GPU (bus 05) and the last (bus e5, one partition missing on the real host).
FIRST, LAST = 16404946649897475633, 15931900197903628278


def raw(with_serials: bool = True) -> dict[str, Any]:
    nodes = [{"id": int(p.name), "properties": (p / "properties").read_text(), "mem_banks": []}
             for p in NODES.iterdir()]
    devices = []
    if with_serials:
        # What the probe reads from /sys/bus/pci/devices/<bdf>/ of two of the GPUs.
        devices = [
            {"path": "/sys/devices/pci0000:00/0000:00:01.1/0000:05:00.0",
             "files": {"current_compute_partition": "CPX\n", "serial_number": "692351000153\n",
                       "unique_id": f"{FIRST:016x}\n", "product_name": "AMD Instinct MI300X\n"}},
            {"path": "/sys/devices/pci0000:e0/0000:e0:01.1/0000:e5:00.0",
             "files": {"serial_number": "692351000987\n"}},
        ]
    return {"kfd_nodes": nodes, "sysfs_devices": devices, "smi": []}


def test_logical_gpus_follow_kfd_node_order() -> None:
    gpus = logical_gpus(raw())
    assert len(gpus) == 63  # 8 x 8 CPX partitions, one missing on this host
    assert [g["node"] for g in gpus] == list(range(2, 65))
    first = gpus[0]
    assert first == {"index": 0, "node": 2, "bdf": "0000:05:00.0", "serial": "692351000153",
                     "unique_id": f"{FIRST:016x}", "partition": 0}
    assert gpus[7]["bdf"] == "0000:05:00.0" and gpus[7]["partition"] == 7  # node 9: 1287
    assert gpus[8]["bdf"] == "0000:27:00.0" and gpus[8]["partition"] == 0  # node 10: 9984
    assert gpus[8]["serial"] is None  # no PCI device read for that GPU
    last = gpus[-1]
    assert (last["node"], last["bdf"], last["partition"]) == (64, "0000:e5:00.0", 6)
    assert last["serial"] == "692351000987" and last["unique_id"] == f"{LAST:016x}"
    # One unique id per physical GPU, eight partitions each (seven on the last).
    per_gpu: dict[str, int] = {}
    for gpu in gpus:
        per_gpu[gpu["unique_id"]] = per_gpu.get(gpu["unique_id"], 0) + 1
    assert sorted(per_gpu.values()) == [7, 8, 8, 8, 8, 8, 8, 8]


def test_slot_gpus_of_a_slot() -> None:
    preflight = {"gpus": logical_gpus(raw())}
    slot = slot_gpus(preflight, "8,9,10,11,12,13,14,15")
    assert {g["bdf"] for g in slot} == {"0000:27:00.0"}
    assert [g["partition"] for g in slot] == list(range(8))
    last = slot_gpus(preflight, "56-63")  # index 63 does not exist on this host
    assert [g["partition"] for g in last] == list(range(7))
    assert {g["serial"] for g in last} == {"692351000987"}
    assert set(slot[0]) == {"serial", "bdf", "unique_id", "partition"}
    assert len(slot_gpus(preflight, None)) == 63
    assert slot_gpus({}, "0") == [] and slot_gpus(None, "0") == []


def test_gpu_model_from_kfd_device_id() -> None:
    assert gpu_model(raw(with_serials=False)) == "MI300X"  # device_id 29857 = 0x74a1
    assert gpu_model({"kfd_nodes": [], "sysfs_devices": []}) is None


def test_parse_visible_devices() -> None:
    assert parse_visible_devices("0,2-4") == [0, 2, 3, 4]
    assert parse_visible_devices("") is None and parse_visible_devices("GPU-x") is None


def test_preflight_keeps_model_and_gpus(tmp_path: Path) -> None:
    probe = {"docker": {"server_version": "26.1.5"}, "rocm_version": "6.4.1",
             "disk": {"free_bytes": 10**12}, "raw": raw()}
    verdict = judge_probe(probe, {})
    assert verdict["gpu_model"] == "MI300X"
    assert len(verdict["gpus"]) == 63 and verdict["gpus"][0]["serial"] == "692351000153"


def test_the_lab_host_answers_the_probe_with_serials(tmp_path: Path) -> None:
    host = module_util("fleetbench_host")
    host_dir = tmp_path / "lab07"
    state = GpuState(compute="CPX", memory="NPS4")
    state.save(host_dir / "gpu-state.json")
    render_host(host_dir, state)
    root = str(host_dir / "root")
    lab_raw = {"kfd_nodes": host.kfd_nodes(root), "sysfs_devices": host.sysfs_devices(root)}
    gpus = logical_gpus(lab_raw)
    assert gpu_model(lab_raw) == "MI300X" and len(gpus) == 64
    physical = physical_gpus(state, "lab07")
    assert [g["serial"] for g in gpus[::8]] == [gpu.serial for gpu in physical]
    assert [g["bdf"] for g in gpus[::8]] == [gpu.bdf for gpu in physical]
    assert [g["unique_id"] for g in gpus[::8]] == [f"{gpu.unique_id:016x}" for gpu in physical]
    assert [g["partition"] for g in gpus[:8]] == list(range(8))
