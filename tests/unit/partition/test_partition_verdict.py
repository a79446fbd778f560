"""The per-host partition verdict, on probe data built from the real fixtures."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from fleetbench.errors import BadInput
from fleetbench.partition import ExpectedPartition, evaluate_host

AMD_STATIC = ["static", "--partition", "--json"]
ROCM_SHOW = ["--showcomputepartition", "--showmemorypartition", "--json"]
CPX_PARTITION_BYTES = 25767706624  # KFD mem_banks/0 size_in_bytes in CPX (S1)
SPX_NPS1_JSON = "amd-smi_static_partition_spx_nps1_8dev_rocm7.json"

Raw = dict[str, Any]


@pytest.fixture
def healthy(
    sysfs_devices: Callable[..., list[dict[str, Any]]],
    kfd_cpx64_nodes: list[dict[str, Any]],
    smi_run: Callable[..., dict[str, Any]],
) -> Raw:
    """8 x MI300X in CPX/NPS4: sysfs, a full KFD topology, amd-smi JSON, no rocm-smi."""
    return {
        "sysfs_devices": sysfs_devices("cpx", "nps4"),
        "kfd_nodes": kfd_cpx64_nodes,
        "smi": [
            smi_run("amd-smi", AMD_STATIC, "amd-smi_static_partition_cpx_nps4_64dev_rocm63.json"),
            smi_run("rocm-smi", ROCM_SHOW, rc=127),
        ],
    }


def _mentions(messages: tuple[str, ...], *words: str) -> bool:
    return any(all(word in message for word in words) for message in messages)


def test_healthy_cpx_nps4_host(healthy: Raw) -> None:
    verdict = evaluate_host(healthy, ExpectedPartition())
    assert verdict.ok, verdict.problems
    assert (verdict.compute_partition, verdict.memory_partition) == ("CPX", "NPS4")
    assert (verdict.logical_gpus, verdict.physical_gpus) == (64, 8)
    assert verdict.partition_memory_bytes == CPX_PARTITION_BYTES
    assert verdict.problems == ()
    assert verdict.warnings == ()
    sources = verdict.sources
    sysfs = sources["sysfs"]
    assert (sysfs.compute_partition, sysfs.memory_partition) == ("CPX", "NPS4")
    assert (sources["kfd"].compute_partition, sources["kfd"].logical_gpus) == ("CPX", 64)
    assert (sources["amd-smi"].compute_partition, sources["amd-smi"].logical_gpus) == ("CPX", 64)
    assert not sources["rocm-smi"].available
    data = verdict.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["sources"]["kfd"]["physical_gpus"] == 8


def test_the_default_expectation_is_cpx_nps4(healthy: Raw) -> None:
    assert evaluate_host(healthy).expected == ExpectedPartition("CPX", "NPS4")


def test_rocm7_wrapper_and_rocm_smi_agree(
    healthy: Raw, smi_run: Callable[..., dict[str, Any]]
) -> None:
    healthy["smi"] = [
        smi_run("amd-smi", ["partition", "--memory", "--json"],
                "amd-smi_partition_memory_cpx_nps4_64dev_rocm7.json"),
        smi_run("rocm-smi", ["--showcomputepartition", "--json"],
                "rocm-smi_showcomputepartition_cpx_63dev.json"),
    ]
    verdict = evaluate_host(healthy)
    assert verdict.ok, verdict.problems
    assert verdict.sources["amd-smi"].memory_partition == "NPS4"
    assert verdict.sources["rocm-smi"].compute_partition == "CPX"


def test_spx_host(
    sysfs_devices: Callable[..., list[dict[str, Any]]],
    kfd_spx_nodes: list[dict[str, Any]],
    smi_run: Callable[..., dict[str, Any]],
) -> None:
    raw = {
        "sysfs_devices": sysfs_devices("spx", "nps1"),
        "kfd_nodes": kfd_spx_nodes,
        "smi": [smi_run("amd-smi", AMD_STATIC, SPX_NPS1_JSON)],
    }
    verdict = evaluate_host(raw, ExpectedPartition())
    assert not verdict.ok
    assert (verdict.compute_partition, verdict.memory_partition) == ("SPX", "NPS1")
    assert (verdict.logical_gpus, verdict.physical_gpus) == (8, 8)
    assert verdict.sources["kfd"].compute_partition == "SPX"
    assert _mentions(verdict.problems, "compute partition SPX", "expected CPX",
                     "fleetbench partition apply")
    assert _mentions(verdict.problems, "memory partition NPS1", "expected NPS4")
    # the count follows the mode found, so no second problem about 8 instead of 64
    assert not _mentions(verdict.problems, "logical GPUs")
    # and an SPX/NPS1 expectation passes on the same host
    assert evaluate_host(raw, ExpectedPartition("SPX", "NPS1")).ok


def test_nps1_host(
    sysfs_devices: Callable[..., list[dict[str, Any]]],
    kfd_cpx64_nodes: list[dict[str, Any]],
    smi_run: Callable[..., dict[str, Any]],
) -> None:
    raw = {
        "sysfs_devices": sysfs_devices("cpx", "nps1"),
        "kfd_nodes": kfd_cpx64_nodes,
        "smi": [smi_run("amd-smi", ["partition", "--current"],
                        "amd-smi_partition_current_cpx_nps1_rocm640_changelog_new.txt")],
    }
    verdict = evaluate_host(raw)
    assert not verdict.ok
    assert (verdict.compute_partition, verdict.memory_partition) == ("CPX", "NPS1")
    assert len(verdict.problems) == 1
    assert _mentions(verdict.problems, "memory partition NPS1", "per sysfs", "expected NPS4",
                     "`fleetbench partition apply`", "CPX/NPS4")
    assert evaluate_host(raw, ExpectedPartition("CPX", "NPS1")).ok


@pytest.mark.parametrize("as_error", [False, True])
def test_63_of_64_partitions(
    healthy: Raw, kfd_cpx_nodes: list[dict[str, Any]], as_error: bool
) -> None:
    healthy["kfd_nodes"] = kfd_cpx_nodes  # the real capture: GPU e5 has 7 partitions
    verdict = evaluate_host(healthy, ExpectedPartition(missing_partition_is_error=as_error))
    assert verdict.logical_gpus == 63
    assert verdict.ok is not as_error
    messages = verdict.problems if as_error else verdict.warnings
    assert _mentions(messages, "63 logical GPUs, expected 64", "0000:e5:00.0 shows 7 of 8",
                     "DRM minor", "ast", "modprobe -r ast; modprobe -r amdgpu; modprobe amdgpu",
                     "blacklist", "newer kernel")


def test_63_logical_gpus_from_rocm_smi_when_kfd_is_unreadable(
    sysfs_devices: Callable[..., list[dict[str, Any]]], smi_run: Callable[..., dict[str, Any]]
) -> None:
    raw = {
        "sysfs_devices": sysfs_devices("cpx", "nps4"),
        "kfd_nodes": [],
        "smi": [smi_run("rocm-smi", ["--csv"],
                        "rocm-smi_showcomputepartition_showmemorypartition_cpx_nps4_63dev.csv")],
    }
    verdict = evaluate_host(raw)
    assert verdict.ok, verdict.problems
    assert verdict.logical_gpus == 63
    assert _mentions(verdict.warnings, "One partition is missing", "63 logical GPUs")


def test_na_secondaries_inherit_from_the_primary(
    healthy: Raw, smi_run: Callable[..., dict[str, Any]]
) -> None:
    healthy["smi"] = [smi_run("rocm-smi", ["--showcomputepartition"],
                              "rocm-smi_showcomputepartition_cpx_rocm641_na.txt")]
    verdict = evaluate_host(healthy)
    assert verdict.ok, verdict.problems
    assert verdict.sources["rocm-smi"].unknown_devices == 55
    assert _mentions(verdict.warnings, "rocm-smi reports N/A for 55 of 63")


def test_na_everywhere_never_passes(
    kfd_cpx64_nodes: list[dict[str, Any]], smi_run: Callable[..., dict[str, Any]]
) -> None:
    raw = {
        "sysfs_devices": [],
        "kfd_nodes": kfd_cpx64_nodes,
        "smi": [smi_run("amd-smi", ["partition", "--accelerator"],
                        "amd-smi_partition_accelerator_nosudo_warning_rocm640_changelog.txt")],
    }
    verdict = evaluate_host(raw)
    assert not verdict.ok
    assert verdict.memory_partition is None
    assert _mentions(verdict.problems, "No source tells the memory partition")
    # KFD alone says CPX: one source is not enough
    assert _mentions(verdict.problems, "Only kfd reports compute partition CPX")


def test_sysfs_unknown_is_a_problem(healthy: Raw) -> None:
    healthy["sysfs_devices"][3]["files"]["current_memory_partition"] = "UNKNOWN\n"
    verdict = evaluate_host(healthy)
    assert not verdict.ok
    assert _mentions(verdict.problems, "memory partition UNKNOWN", "0000:65:00.0")


def test_sources_disagree(healthy: Raw, smi_run: Callable[..., dict[str, Any]]) -> None:
    healthy["smi"] = [smi_run("amd-smi", AMD_STATIC, SPX_NPS1_JSON)]
    verdict = evaluate_host(healthy)
    assert not verdict.ok
    # sysfs is authoritative
    assert (verdict.compute_partition, verdict.memory_partition) == ("CPX", "NPS4")
    assert _mentions(verdict.problems, "disagree", "compute partition", "sysfs says CPX",
                     "amd-smi says SPX")
    assert _mentions(verdict.problems, "disagree", "memory partition", "sysfs says NPS4",
                     "amd-smi says NPS1", "reset -r")


def test_kfd_disagrees_with_sysfs(healthy: Raw, kfd_spx_nodes: list[dict[str, Any]]) -> None:
    healthy["kfd_nodes"] = kfd_spx_nodes
    verdict = evaluate_host(healthy)
    assert not verdict.ok
    assert _mentions(verdict.problems, "sysfs says CPX", "KFD topology shows SPX")
    assert _mentions(verdict.problems, "8 logical GPUs, expected 64")


def test_mixed_gpus(healthy: Raw, smi_text: Callable[[str], str]) -> None:
    healthy["sysfs_devices"][0]["files"]["current_compute_partition"] = smi_text(
        "sysfs_current_compute_partition_spx.txt")
    verdict = evaluate_host(healthy)
    assert verdict.compute_partition == "MIXED"
    assert _mentions(verdict.problems, "not all in the same compute partition",
                     "SPX on 0000:05:00.0", "CPX on 0000:27:00.0")


@pytest.mark.parametrize("keep", ["sysfs", "kfd", "smi"])
def test_only_one_source_available(healthy: Raw, keep: str) -> None:
    raw = {
        "sysfs_devices": healthy["sysfs_devices"] if keep == "sysfs" else [],
        "kfd_nodes": healthy["kfd_nodes"] if keep == "kfd" else [],
        "smi": healthy["smi"] if keep == "smi" else [],
    }
    verdict = evaluate_host(raw)
    assert not verdict.ok
    name = "amd-smi" if keep == "smi" else keep
    assert _mentions(verdict.problems, f"Only {name} reports compute partition CPX",
                     "at least two independent sources")


def test_smi_tools_missing(healthy: Raw, smi_run: Callable[..., dict[str, Any]]) -> None:
    healthy["smi"] = [
        smi_run("amd-smi", AMD_STATIC, rc=127),
        smi_run("rocm-smi", ROCM_SHOW, rc=127),
    ]
    verdict = evaluate_host(healthy)
    # sysfs and KFD still agree on CPX, sysfs alone gives NPS4: usable, with warnings
    assert verdict.ok, verdict.problems
    assert _mentions(verdict.warnings, "Neither amd-smi nor rocm-smi",
                     "amd-smi is not installed (exit 127)")
    assert _mentions(verdict.warnings, "NPS4 is confirmed by sysfs only")


def test_smi_tool_failing(healthy: Raw) -> None:
    healthy["smi"] = [{"tool": "amd-smi", "args": AMD_STATIC, "rc": 10, "stdout": "",
                       "stderr": "PermissionError: Command requires elevation\n"}]
    verdict = evaluate_host(healthy)
    assert verdict.ok, verdict.problems
    assert "failed (exit 10): PermissionError" in verdict.sources["amd-smi"].detail


def test_nothing_readable() -> None:
    verdict = evaluate_host({"sysfs_devices": [], "kfd_nodes": [], "smi": []})
    assert not verdict.ok
    assert _mentions(verdict.problems, "No source could tell the GPU partition")
    assert evaluate_host({}).problems == verdict.problems


def test_kfd_without_gpu_nodes(healthy: Raw, kfd_cpx64_nodes: list[dict[str, Any]]) -> None:
    healthy["kfd_nodes"] = [n for n in kfd_cpx64_nodes if "simd_count 0" in n["properties"]]
    verdict = evaluate_host(healthy)
    assert not verdict.ok
    assert verdict.logical_gpus == 0
    assert _mentions(verdict.problems, "no GPU node although 8 amdgpu PCI device(s)")


def test_kfd_grouping_without_unique_id(healthy: Raw) -> None:
    # Older kernels have no unique_id: group partitions by PCI bus/device instead.
    healthy["kfd_nodes"] = [
        {**n, "properties": re.sub(r"^unique_id \d+\n", "", n["properties"], flags=re.M)}
        for n in healthy["kfd_nodes"]
    ]
    verdict = evaluate_host(healthy)
    assert verdict.ok, verdict.problems
    assert verdict.sources["kfd"].physical_gpus == 8


def test_partition_memory_never_comes_from_smi_totals(healthy: Raw) -> None:
    # amd-smi metric output reports the whole GPU (196592 MB) for partition 0
    healthy["kfd_nodes"] = [{**n, "mem_banks": []} for n in healthy["kfd_nodes"]]
    verdict = evaluate_host(healthy)
    assert verdict.partition_memory_bytes is None


def test_partition_memory_sizes_differ(healthy: Raw) -> None:
    nodes = healthy["kfd_nodes"]
    nodes[5] = {**nodes[5], "mem_banks": [nodes[5]["mem_banks"][0].replace("25767706624", "1024")]}
    verdict = evaluate_host(healthy)
    assert verdict.partition_memory_bytes == CPX_PARTITION_BYTES
    assert _mentions(verdict.warnings, "different partition memory sizes", "1024")


def test_expected_mode_not_offered(healthy: Raw, smi_text: Callable[[str], str]) -> None:
    spx = smi_text("sysfs_current_compute_partition_spx.txt")
    for device in healthy["sysfs_devices"]:
        device["files"]["current_compute_partition"] = spx
        device["files"]["available_compute_partition"] = "SPX, TPX\n"
    verdict = evaluate_host(healthy)
    assert _mentions(verdict.problems, "do(es) not offer compute partition CPX", "SPX, TPX")


# ------------------------------------------------------------------------------ expectations


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("SPX", "NPS4"), "not a valid partition combination"),
        (("DPX", "NPS4"), "not a valid partition combination"),
        (("XPX", "NPS4"), "unknown compute partition"),
        (("CPX", "NPS3"), "unknown memory partition"),
        (("CPX", "NPS4", 0), "at least 1"),
        (("SPX", "NPS1", 8), "SPX keeps each GPU whole"),
        (("CPX", "NPS4", 2), "not a valid partition combination"),
    ],
)
def test_invalid_expectations(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        ExpectedPartition(*args)
    assert " — " in str(caught.value)  # "<problem> — <fix>"


@pytest.mark.parametrize(
    ("text", "compute", "memory", "per_gpu", "caution"),
    [
        ("CPX/NPS4", "CPX", "NPS4", 8, ""),
        (" cpx , nps1 ", "CPX", "NPS1", 8, ""),
        ("SPX NPS1", "SPX", "NPS1", 1, ""),
        ("QPX/NPS4", "QPX", "NPS4", 4, "not in AMD's validated list"),
        ("DPX/NPS2", "DPX", "NPS2", 2, "not in AMD's validated list"),
    ],
)
def test_expectation_from_user_text(
    text: str, compute: str, memory: str, per_gpu: int, caution: str
) -> None:
    expected = ExpectedPartition.parse(text)
    assert (expected.compute, expected.memory, expected.partitions_per_gpu) == (
        compute, memory, per_gpu)
    assert caution in expected.caution
    assert bool(expected.caution) == bool(caution)


def test_expectation_text_must_have_two_parts() -> None:
    with pytest.raises(BadInput, match="COMPUTE/MEMORY"):
        ExpectedPartition.parse("CPX")


def test_mi300a_cpx_with_six_partitions_per_gpu(healthy: Raw) -> None:
    expected = ExpectedPartition("cpx", "nps1", logical_per_physical=6)
    assert expected.partitions_per_gpu == 6
    # An 8-partition host is then 16 logical GPUs too many
    healthy["sysfs_devices"] = [
        {**d, "files": {**d["files"], "current_memory_partition": "NPS1\n"}}
        for d in healthy["sysfs_devices"]
    ]
    healthy["smi"] = []
    verdict = evaluate_host(healthy, expected)
    assert _mentions(verdict.problems, "64 logical GPUs, expected 48")


def test_caution_becomes_a_warning(healthy: Raw) -> None:
    verdict = evaluate_host(healthy, ExpectedPartition("QPX", "NPS4"))
    assert _mentions(verdict.warnings, "QPX/NPS4", "validated")
