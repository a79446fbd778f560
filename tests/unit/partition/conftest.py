"""Probe ``raw`` data built from the real SMI and KFD files in ``tests/fixtures``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def smi_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "smi"


@pytest.fixture(scope="session")
def smi_text(smi_dir: Path) -> Callable[[str], str]:
    """The text of one ``fixtures/smi`` file."""
    return lambda name: (smi_dir / name).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def kfd_cpx_nodes(fixtures_dir: Path, smi_dir: Path) -> list[dict[str, Any]]:
    """The probe's ``kfd_nodes`` for the real 8 x MI300X CPX topology.

    The capture has 2 CPU nodes and 63 GPU nodes (the last GPU lacks function 7). Every GPU
    node gets the real CPX ``mem_banks/0/properties`` (S1), which the copy left out.
    """
    bank = (smi_dir / "kfd_topology_node3_mem_banks0_properties_cpx.txt").read_text()
    nodes_dir = fixtures_dir / "kfd" / "mi300x-8gpu-cpx" / "topology" / "nodes"
    nodes = []
    for node in sorted(nodes_dir.iterdir(), key=lambda p: int(p.name)):
        properties = (node / "properties").read_text()
        is_gpu = int(re.search(r"^simd_count (\d+)$", properties, re.M).group(1)) > 0
        nodes.append({"id": int(node.name), "properties": properties,
                      "mem_banks": [bank] if is_gpu else []})
    return nodes


def _complete(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the missing 64th partition: a copy of the last node as function 7."""
    last = nodes[-1]
    props = re.sub(r"^location_id \d+$", "location_id 58631", last["properties"], flags=re.M)
    props = re.sub(r"^drm_render_minor \d+$", "drm_render_minor 191", props, flags=re.M)
    return [*nodes, {"id": last["id"] + 1, "properties": props, "mem_banks": last["mem_banks"]}]


@pytest.fixture(scope="session")
def kfd_cpx64_nodes(kfd_cpx_nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same topology with all 64 partitions present."""
    return _complete(kfd_cpx_nodes)


@pytest.fixture(scope="session")
def kfd_spx_nodes(kfd_cpx_nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An SPX view of the same node: one GPU node per physical GPU (function 0), 8 XCCs."""
    nodes = []
    for node in kfd_cpx_nodes:
        props = node["properties"]
        location = re.search(r"^location_id (\d+)$", props, re.M)
        if "simd_count 152" in props:
            if location is None or int(location.group(1)) & 7:
                continue
            props = props.replace("simd_count 152", "simd_count 1216").replace(
                "num_xcc 1", "num_xcc 8")
        nodes.append({**node, "properties": props})
    return nodes


@pytest.fixture(scope="session")
def pci_addresses(kfd_cpx_nodes: list[dict[str, Any]]) -> list[str]:
    """PCI addresses (function 0) of the 8 physical GPUs of the KFD capture."""
    found = set()
    for node in kfd_cpx_nodes:
        location = int(re.search(r"^location_id (\d+)$", node["properties"], re.M).group(1))
        if location:
            found.add(f"0000:{location >> 8:02x}:{(location >> 3) & 0x1F:02x}.0")
    return sorted(found)


@pytest.fixture(scope="session")
def sysfs_devices(
    pci_addresses: list[str], smi_text: Callable[[str], str]
) -> Callable[..., list[dict[str, Any]]]:
    """``sysfs_devices`` for the 8 GPUs, files taken from the real sysfs fixtures."""

    def build(compute: str = "cpx", memory: str = "nps4") -> list[dict[str, Any]]:
        files = {
            "current_compute_partition": smi_text(f"sysfs_current_compute_partition_{compute}.txt"),
            "current_memory_partition": smi_text(f"sysfs_current_memory_partition_{memory}.txt"),
            "available_compute_partition": smi_text("sysfs_available_compute_partition_mi300x.txt"),
            "available_memory_partition": smi_text("sysfs_available_memory_partition_mi300x.txt"),
        }
        return [{"path": f"/sys/bus/pci/devices/{bdf}", "files": dict(files)}
                for bdf in pci_addresses]

    return build


@pytest.fixture(scope="session")
def smi_run(smi_text: Callable[[str], str]) -> Callable[..., dict[str, Any]]:
    """One ``smi`` entry whose stdout is a fixture file (or a missing tool: ``rc=127``)."""

    def build(
        tool: str, args: list[str], fixture: str | None = None, rc: int = 0
    ) -> dict[str, Any]:
        if rc == 127:
            return {"tool": tool, "args": args, "rc": 127, "stdout": "",
                    "stderr": f"{tool}: command not found"}
        stdout = smi_text(fixture) if fixture else ""
        return {"tool": tool, "args": args, "rc": rc, "stdout": stdout, "stderr": ""}

    return build
