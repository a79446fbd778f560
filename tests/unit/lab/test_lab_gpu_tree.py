"""The rendered sysfs/KFD tree against the real fixture files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbench.lab import gpu, smi

SYS = Path("root/sys")
NODES = SYS / "class/kfd/kfd/topology/nodes"


def properties(path: Path) -> dict[str, int]:
    pairs = (line.split() for line in path.read_text().splitlines())
    return {key: int(value) for key, value in pairs}


def node_properties(nodes: Path) -> dict[int, dict[str, int]]:
    return {int(n.name): properties(n / "properties") for n in nodes.iterdir()}


def gpu_nodes(nodes: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    return {n: p for n, p in sorted(nodes.items()) if p["simd_count"] > 0}


def test_pci_partition_files_are_the_kernel_formats(
    make_host: Callable[..., Path], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host()
    devices = sorted((host / SYS / "bus/pci/devices").iterdir())
    assert [d.name for d in devices] == [
        f"0000:{bus}:00.0" for bus in ("05", "27", "47", "65", "85", "a7", "c7", "e5")
    ]
    for device in devices:
        files = {f: (device / f).read_text() for f in gpu_partition_files()}
        assert files == {
            "current_compute_partition": smi_fixture("sysfs_current_compute_partition_cpx.txt"),
            "available_compute_partition": smi_fixture(
                "sysfs_available_compute_partition_mi300x.txt"
            ),
            "current_memory_partition": smi_fixture("sysfs_current_memory_partition_nps4.txt"),
            "available_memory_partition": smi_fixture(
                "sysfs_available_memory_partition_mi300x.txt"
            ),
        }


def gpu_partition_files() -> tuple[str, ...]:
    return (
        "current_compute_partition",
        "available_compute_partition",
        "current_memory_partition",
        "available_memory_partition",
    )


@pytest.mark.parametrize(("compute", "memory"), [("SPX", "NPS1"), ("DPX", "NPS1"), ("QPX", "NPS4")])
def test_other_modes_use_the_fixture_values(
    make_host: Callable[..., Path], smi_fixture: Callable[[str], str], compute: str, memory: str
) -> None:
    host = make_host(compute=compute, memory=memory)
    device = host / SYS / "bus/pci/devices/0000:05:00.0"
    assert (device / "current_compute_partition").read_text() == smi_fixture(
        f"sysfs_current_compute_partition_{compute.lower()}.txt"
    )
    assert (device / "current_memory_partition").read_text() == smi_fixture(
        f"sysfs_current_memory_partition_{memory.lower()}.txt"
    )


def test_kfd_tree_matches_the_real_cpx_tree(
    make_host: Callable[..., Path], kfd_fixture_nodes: Path
) -> None:
    real = node_properties(kfd_fixture_nodes)
    # The real capture is a 63-partition node (one DRM minor taken by the BMC's VGA).
    ours = node_properties(make_host(partitions="63") / NODES)
    assert sorted(ours) == sorted(real)
    for node, props in real.items():
        assert list(ours[node]) == list(props), f"property keys/order of node {node}"
    real_gpus, our_gpus = gpu_nodes(real), gpu_nodes(ours)
    assert len(our_gpus) == len(real_gpus) == 63
    for node, props in real_gpus.items():
        for key in (
            "simd_count",
            "num_xcc",
            "location_id",
            "drm_render_minor",
            "io_links_count",
            "array_count",
            "device_id",
            "gfx_target_version",
        ):
            assert our_gpus[node][key] == props[key], f"node {node} {key}"
    for key in ("io_links_count", "p2p_links_count", "cpu_core_id_base"):
        assert [ours[n][key] for n in (0, 1)] == [real[n][key] for n in (0, 1)]

    def groups(nodes: dict[int, dict[str, int]]) -> list[list[int]]:
        by_id: dict[int, list[int]] = {}
        for node, props in nodes.items():
            by_id.setdefault(props["unique_id"], []).append(node)
        return sorted(by_id.values())

    assert groups(our_gpus) == groups(real_gpus)  # one unique_id per physical GPU


def test_cpx_mem_bank_is_the_measured_partition_size(
    make_host: Callable[..., Path], smi_fixture: Callable[[str], str]
) -> None:
    nodes = make_host() / NODES
    expected = smi_fixture("kfd_topology_node3_mem_banks0_properties_cpx.txt")
    for node in range(2, 66):
        assert (nodes / str(node) / "mem_banks/0/properties").read_text() == expected


@pytest.mark.parametrize(
    ("compute", "memory", "gpu_nodes_wanted", "simd", "xcc", "bank"),
    [
        ("SPX", "NPS1", 8, 1216, 8, 206141652992),
        ("DPX", "NPS1", 16, 608, 4, 103070826496),
        ("QPX", "NPS4", 32, 304, 2, 51535413248),
        ("CPX", "NPS1", 64, 152, 1, 25767706624),
    ],
)
def test_kfd_nodes_per_mode(
    make_host: Callable[..., Path],
    compute: str,
    memory: str,
    gpu_nodes_wanted: int,
    simd: int,
    xcc: int,
    bank: int,
) -> None:
    nodes_dir = make_host(compute=compute, memory=memory) / NODES
    nodes = gpu_nodes(node_properties(nodes_dir))
    assert list(nodes) == list(range(2, 2 + gpu_nodes_wanted))
    assert {(p["simd_count"], p["num_xcc"]) for p in nodes.values()} == {(simd, xcc)}
    sizes = {
        properties(nodes_dir / str(n) / "mem_banks/0/properties")["size_in_bytes"] for n in nodes
    }
    assert sizes == {bank}


def test_rerender_leaves_no_stale_nodes(make_host: Callable[..., Path]) -> None:
    host = make_host()
    assert len(list((host / NODES).iterdir())) == 66
    state = gpu.GpuState.load(host / gpu.STATE_FILE).with_settings(
        {"compute": "SPX", "memory": "NPS1"}
    )
    smi.render_host(host, state)
    assert sorted(int(n.name) for n in (host / NODES).iterdir()) == list(range(10))
    assert len(list((host / SYS / "class/drm").glob("card*"))) == 8
    assert not (host / SYS / "devices/platform").exists()
    assert [p.name for p in (host / "root").iterdir() if p.name.startswith(".")] == []


def test_drm_nodes_primaries_on_pci_secondaries_on_xcp(make_host: Callable[..., Path]) -> None:
    host = make_host()
    drm = host / SYS / "class/drm"
    cards = sorted(drm.glob("card*"), key=lambda p: int(p.name[4:]))
    assert [c.name for c in cards] == [f"card{n}" for n in range(1, 65)]
    with_files = [c.name for c in cards if (c / "device/current_compute_partition").is_file()]
    assert with_files == [f"card{1 + 8 * g}" for g in range(8)]
    assert (drm / "renderD128/device/current_memory_partition").read_text() == "NPS4\n"
    # Partition 2 of GPU 4 is amdgpu_xcp.29 with renderD162 (S13, sysfs_amdgpu_xcp_platform_*).
    assert (drm / "renderD162").resolve() == (
        host / SYS / "devices/platform/amdgpu_xcp.29/drm/renderD162"
    ).resolve()
    assert (host / SYS / "module/amdgpu/drivers/pci:amdgpu/0000:e5:00.0/device").read_text() == (
        "0x74a1\n"
    )


def test_missing_partition_hides_its_drm_and_kfd_nodes(make_host: Callable[..., Path]) -> None:
    host = make_host(partitions="63")
    assert not (host / SYS / "class/drm/renderD191").exists()
    assert (host / SYS / "class/drm/renderD190").exists()
    assert not (host / NODES / "65").exists()


def test_rocm_version_file(make_host: Callable[..., Path]) -> None:
    text = (make_host(rocm="6.3") / "root/opt/rocm/.info/version").read_text()
    assert text.startswith("6.3.1-")
    assert text.endswith("\n")


def test_identifiers_differ_between_hosts(make_host: Callable[..., Path]) -> None:
    first, second = make_host(), make_host()
    key = "unique_id"
    assert (
        properties(first / NODES / "2/properties")[key]
        != properties(second / NODES / "2/properties")[key]
    )
