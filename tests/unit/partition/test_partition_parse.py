"""Format detection and parsing of every partition-related tool output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbench.partition import DeviceReading, parse_text

# Every file of fixtures/smi with what `partition parse` must say about it:
# (format, compute_partition, memory_partition, devices, unknown_devices).
# Values were checked by reading each file (comments say why where it is not obvious).
EXPECTED: dict[str, tuple[str, str | None, str | None, int | None, int | None]] = {
    "amd-smi_default_spx_nps1_rocm70_changelog.txt": ("amd-smi-default", "SPX", "NPS1", 8, 0),
    "amd-smi_list_cpx_nps4_64dev_rocm7.json": ("amd-smi-json", None, None, 64, 0),
    # the blog's excerpt keeps GPUs 0-7 and 56-63
    "amd-smi_list_csv_cpx_blog.txt": ("amd-smi-csv", None, None, 16, 0),
    "amd-smi_list_e_cpx_nps4_64dev_rocm7.json": ("amd-smi-json", None, None, 64, 0),
    "amd-smi_list_e_cpx_rocm641_changelog_corrected.txt": ("amd-smi-text", None, None, 2, 0),
    "amd-smi_list_e_cpx_rocm641_changelog_previous.txt": ("amd-smi-text", None, None, 2, 0),
    "amd-smi_list_rocm63_changelog.txt": ("amd-smi-text", None, None, 2, 0),
    "amd-smi_metric_mem_usage_cpx_first2_rocm641plus.txt": ("amd-smi-text", None, None, 2, 0),
    "amd-smi_metric_mem_usage_cpx_first8_rocm641plus.json": ("amd-smi-json", None, None, 8, 0),
    "amd-smi_metric_mem_usage_spx_8dev_rocm63.json": ("amd-smi-json", None, None, 8, 0),
    # a bare MEM_USAGE block: no GPU line, so no device listed
    "amd-smi_metric_mem_usage_spx_rocm71_changelog_excerpt.txt": (
        "amd-smi-text", None, None, None, None),
    "amd-smi_monitor_cpx_rocm641_changelog_corrected.txt": ("amd-smi-monitor", None, None, 9, 0),
    "amd-smi_monitor_cpx_rocm641_changelog_previous.txt": ("amd-smi-monitor", None, None, 9, 0),
    "amd-smi_monitor_p_t_v_32logical_rocm63_changelog.txt": ("amd-smi-monitor", None, None, 32, 0),
    # DPX* marks the current profile; the table has no current memory partition
    "amd-smi_partition_accelerator_dpx_rocm640_excerpt.txt": ("amd-smi-table", "DPX", None, 2, 0),
    # 7.0.2: GPU 1 (a secondary partition) is a single N/A row
    "amd-smi_partition_accelerator_dpx_rocm702_excerpt.txt": ("amd-smi-table", "DPX", None, 3, 1),
    # without sudo every row is N/A, GPU_ID included
    "amd-smi_partition_accelerator_nosudo_warning_rocm640_changelog.txt": (
        "amd-smi-table", None, None, 8, 8),
    "amd-smi_partition_current_cpx_nps1_rocm640_changelog_new.txt": (
        "amd-smi-table", "CPX", "NPS1", 11, 0),
    # PARTITION_ID N/A on secondaries is not a partition mode
    "amd-smi_partition_current_cpx_nps1_rocm640_changelog_previous.txt": (
        "amd-smi-table", "CPX", "NPS1", 11, 0),
    "amd-smi_partition_current_cpx_nps4_64dev_rocm64plus.txt": (
        "amd-smi-table", "CPX", "NPS4", 64, 0),
    "amd-smi_partition_current_spx_nps1_8dev_rocm7.json": ("amd-smi-json", "SPX", "NPS1", 8, 0),
    "amd-smi_partition_memory_cpx_nps4_64dev_rocm7.json": ("amd-smi-json", None, "NPS4", 64, 0),
    # MI300A on 6.3.3 / 6.4.0: ACCELERATOR_TYPE N/A on all 4, memory NPS1
    "amd-smi_partition_mi300a_rocm633_na.txt": ("amd-smi-table", None, "NPS1", 4, 4),
    "amd-smi_partition_mi300a_rocm640.txt": ("amd-smi-table", None, "NPS1", 4, 4),
    "amd-smi_partition_mi300a_spx_preview_rocm7_excerpt.txt": (
        "amd-smi-table", "SPX", "NPS1", 4, 0),
    "amd-smi_set_compute_partition_argparse_error_rocm643_py313.txt": (
        "amd-smi-error", None, None, None, None),
    "amd-smi_set_compute_partition_cpx_docs.txt": ("amd-smi-text", "CPX", None, 8, 0),
    "amd-smi_set_compute_partition_error_busy_docs.txt": ("amd-smi-error", None, None, None, None),
    "amd-smi_set_compute_partition_error_noperm_docs.txt": (
        "amd-smi-error", None, None, None, None),
    "amd-smi_set_compute_partition_spx_docs.txt": ("amd-smi-text", "SPX", None, 8, 0),
    "amd-smi_set_compute_partition_spx_while_nps4_error_docs.txt": (
        "amd-smi-error", None, None, None, None),
    "amd-smi_set_help_partition_options_rocm702_excerpt.txt": (
        "amd-smi-help", None, None, None, None),
    "amd-smi_set_memory_partition_nps1_docs.txt": ("amd-smi-text", None, "NPS1", 8, 0),
    "amd-smi_set_memory_partition_nps1_rocm63_changelog.txt": ("amd-smi-text", None, "NPS1", 3, 0),
    # GPUs 0-14 were set before "OSError: [Errno 24] Too many open files"
    "amd-smi_set_memory_partition_nps4_docs.txt": ("amd-smi-text", None, "NPS4", 15, 0),
    "amd-smi_static_partition_cpx_nps1_blog.txt": ("amd-smi-text", "CPX", "NPS1", 3, 0),
    "amd-smi_static_partition_cpx_nps4_64dev_docs.txt": ("amd-smi-text", "CPX", "NPS4", 64, 0),
    "amd-smi_static_partition_cpx_nps4_64dev_rocm63.json": ("amd-smi-json", "CPX", "NPS4", 64, 0),
    "amd-smi_static_partition_cpx_nps4_rocm63_changelog.txt": ("amd-smi-text", "CPX", "NPS4", 1, 0),
    "amd-smi_static_partition_mi300a_spx_nps1_rocm633.txt": ("amd-smi-text", "SPX", "NPS1", 4, 0),
    "amd-smi_static_partition_spx_nps1_8dev_rocm7.json": ("amd-smi-json", "SPX", "NPS1", 8, 0),
    # old and new key names for the same GPU 0: one device
    "amd-smi_static_partition_spx_nps1_rocm642_changelog_old_vs_new.txt": (
        "amd-smi-text", "SPX", "NPS1", 1, 0),
    "amd-smi_static_vram_spx_8dev_rocm63.json": ("amd-smi-json", None, None, 8, 0),
    "amd-smi_static_vram_spx_rocm63.txt": ("amd-smi-text", None, None, 2, 0),
    "kfd_topology_node3_mem_banks0_properties_cpx.txt": (
        "kfd-mem-bank-properties", None, None, None, None),
    "rocm-smi_default_cpx_nps1_63dev.txt": ("rocm-smi-concise", "CPX", "NPS1", 63, 0),
    "rocm-smi_default_cpx_nps4_64dev.txt": ("rocm-smi-concise", "CPX", "NPS4", 64, 0),
    # ROCm 6.4.1: odd devices print "N/A, N/A, 1"
    "rocm-smi_default_dpx_nps1_rocm641_na.txt": ("rocm-smi-concise", "DPX", "NPS1", 16, 8),
    "rocm-smi_default_mi300a_spx.txt": ("rocm-smi-concise", "SPX", "NPS1", 1, 0),
    "rocm-smi_default_mi300a_tpx.txt": ("rocm-smi-concise", "TPX", "NPS1", 3, 0),
    "rocm-smi_default_qpx_nps1_1gpu.txt": ("rocm-smi-concise", "QPX", "NPS1", 4, 0),
    "rocm-smi_default_spx_nps1.txt": ("rocm-smi-concise", "SPX", "NPS1", 8, 0),
    "rocm-smi_default_spx_nps1_1gpu.txt": ("rocm-smi-concise", "SPX", "NPS1", 1, 0),
    "rocm-smi_default_spx_nps1_load_blog.txt": ("rocm-smi-concise", "SPX", "NPS1", 8, 0),
    "rocm-smi_json_default_concise.txt": ("rocm-smi-error", None, None, None, None),
    "rocm-smi_setcomputepartition_cpx.txt": ("rocm-smi-text", "CPX", None, 8, 0),
    # a failed set leaves the mode unknown for every GPU
    "rocm-smi_setcomputepartition_cpx_busy.txt": ("rocm-smi-text", None, None, 8, 8),
    "rocm-smi_setcomputepartition_spx_while_nps4.txt": ("rocm-smi-text", None, None, 8, 8),
    "rocm-smi_setmemorypartition_nps4.txt": ("rocm-smi-text", None, "NPS4", 8, 0),
    "rocm-smi_showallinfo_partition_sections_spx_nps1_excerpt.txt": (
        "rocm-smi-text", "SPX", "NPS1", 4, 0),
    "rocm-smi_showcomputepartition_cpx_63dev.json": ("rocm-smi-json", "CPX", None, 63, 0),
    "rocm-smi_showcomputepartition_cpx_63dev.txt": ("rocm-smi-text", "CPX", None, 63, 0),
    # GPU 0, 8, ..., 56 say CPX; the other 55 "Not supported on the given system"
    "rocm-smi_showcomputepartition_cpx_rocm641_na.txt": ("rocm-smi-text", "CPX", None, 63, 55),
    "rocm-smi_showcomputepartition_mi325x_cpx_1partition.txt": ("rocm-smi-text", "CPX", None, 1, 0),
    "rocm-smi_showcomputepartition_showmemorypartition_cpx_nps4_63dev.csv": (
        "rocm-smi-csv", "CPX", "NPS4", 63, 0),
    "rocm-smi_showcomputepartition_showmemorypartition_spx_nps1.json": (
        "rocm-smi-json", "SPX", "NPS1", 8, 0),
    "rocm-smi_showcomputepartition_spx.txt": ("rocm-smi-text", "SPX", None, 8, 0),
    "rocm-smi_showid_dpx_nps1_rocm641_na.txt": ("rocm-smi-text", None, None, 16, 0),
    "rocm-smi_showmeminfo_vram_cpx_nps4_63dev.json": ("rocm-smi-json", None, None, 63, 0),
    "rocm-smi_showmeminfo_vram_cpx_nps4_63dev.txt": ("rocm-smi-text", None, None, 63, 0),
    "rocm-smi_showmeminfo_vram_mi300a_tpx.txt": ("rocm-smi-text", None, None, 3, 0),
    "rocm-smi_showmeminfo_vram_qpx_1gpu.txt": ("rocm-smi-text", None, None, 4, 0),
    "rocm-smi_showmeminfo_vram_spx_nps1.txt": ("rocm-smi-text", None, None, 8, 0),
    "rocm-smi_showmemorypartition_nps1.txt": ("rocm-smi-text", None, "NPS1", 8, 0),
    "rocm-smi_showmemorypartition_nps4_63dev.json": ("rocm-smi-json", None, "NPS4", 63, 0),
    "rocm-smi_showmemorypartition_nps4_63dev.txt": ("rocm-smi-text", None, "NPS4", 63, 0),
    # agent 4's "Device Type" line is cut from the excerpt; its gfx name still marks a GPU
    "rocminfo_cpx_agent_excerpt.txt": ("rocminfo", None, None, 2, 0),
    "sysfs_amdgpu_xcp_platform_tree_cpx_excerpt.txt": ("sysfs-listing", None, None, None, None),
    "sysfs_available_compute_partition_mi300a.txt": (
        "sysfs-available-compute-partition", None, None, None, None),
    "sysfs_available_compute_partition_mi300x.txt": (
        "sysfs-available-compute-partition", None, None, None, None),
    "sysfs_available_memory_partition_mi300x.txt": (
        "sysfs-available-memory-partition", None, None, None, None),
    "sysfs_current_compute_partition_cpx.txt": (
        "sysfs-current-compute-partition", "CPX", None, None, None),
    "sysfs_current_compute_partition_dpx.txt": (
        "sysfs-current-compute-partition", "DPX", None, None, None),
    "sysfs_current_compute_partition_qpx.txt": (
        "sysfs-current-compute-partition", "QPX", None, None, None),
    "sysfs_current_compute_partition_spx.txt": (
        "sysfs-current-compute-partition", "SPX", None, None, None),
    "sysfs_current_memory_partition_nps1.txt": (
        "sysfs-current-memory-partition", None, "NPS1", None, None),
    "sysfs_current_memory_partition_nps4.txt": (
        "sysfs-current-memory-partition", None, "NPS4", None, None),
}


def _summary(text: str) -> tuple[str, str | None, str | None, int | None, int | None]:
    d = parse_text(text).to_dict()
    return (d["format"], d["compute_partition"], d["memory_partition"], d["devices"],
            d["unknown_devices"])


def test_every_fixture_file_has_an_expectation(smi_dir: Path) -> None:
    # A new fixture must be added to EXPECTED, not silently accepted.
    on_disk = {p.name for p in smi_dir.iterdir() if p.suffix != ".md"}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_fixture_file(smi_text: Callable[[str], str], name: str, expected: tuple) -> None:
    assert _summary(smi_text(name)) == expected


@pytest.mark.parametrize(
    ("name", "devices", "unknown"),
    [("0", 0, None), ("1", 0, None), ("2", 1, 0), ("64", 1, 0)],
)
def test_kfd_node_properties(
    fixtures_dir: Path, name: str, devices: int, unknown: int | None
) -> None:
    text = (fixtures_dir / "kfd/mi300x-8gpu-cpx/topology/nodes" / name / "properties").read_text()
    reading = parse_text(text)
    assert reading.format == "kfd-node-properties"
    # CPU nodes (0 and 1) list no logical GPU; GPU nodes one each
    assert reading.devices == (devices or None)
    assert reading.unknown_devices == unknown


@pytest.mark.parametrize(
    ("text", "fmt"),
    [("", "empty"), ("  \n\r\n", "empty"), ("hello world\n", "unknown"), ("[1, 2, 3]", "unknown"),
     ('{"something": "else"}', "unknown"), ("UNKNOWN\n", "sysfs-current-partition"),
     ("Not supported\n", "sysfs-available-compute-partition")],
)
def test_texts_without_partition_info(text: str, fmt: str) -> None:
    assert _summary(text) == (fmt, None, None, None, None)


# ------------------------------------------------------------------ variations of the real files


def test_ansi_italics_and_crlf_do_not_change_the_concise_table(
    smi_text: Callable[[str], str],
) -> None:
    # rocm-smi wraps the second header line in ESC[3m ... ESC[0m even in a pipe.
    lines = smi_text("rocm-smi_default_cpx_nps4_64dev.txt").split("\n")
    sub = next(i for i, line in enumerate(lines) if "(Mem, Compute, ID)" in line)
    lines[sub] = f"\x1b[3m{lines[sub]}\x1b[0m"
    lines[sub - 1] = f"\x1b[1m{lines[sub - 1]}\x1b[0m"
    assert _summary("\r\n".join(lines)) == ("rocm-smi-concise", "CPX", "NPS4", 64, 0)


def test_bom_cr_and_tabs_in_sysfs_values() -> None:
    assert _summary("\ufeffcpx \r\n") == (
        "sysfs-current-compute-partition", "CPX", None, None, None)
    assert _summary("\tNPS2\n") == ("sysfs-current-memory-partition", None, "NPS2", None, None)


# Older rocm-smi (about ROCm 6.0/6.1) layout, as captured from 4 x MI300X in S10
# (thamada/nvidia-smi nvsim/MI300X_x4_smi.py): a name line under each device row.
# Rows are assembled here only to keep source lines short; the text is the capture's.
_RULE = "=" * 116
_TAIL = "131Mhz  900Mhz  0%   auto  750.0W    0%   0%"


def _legacy_row(device: int, cell: str) -> str:
    return f"{device:<8}[0x74a1 : 0x00]       35.0°C      133.0W    {cell:<16}{_TAIL}"


LEGACY = "\n".join([
    "=" * 41 + " ROCm System Management Interface " + "=" * 41,
    "=" * 51 + " Concise Info " + "=" * 51,
    "Device  [Model : Revision]    Temp        Power     Partitions      "
    "SCLK    MCLK    Fan  Perf  PwrCap  VRAM%  GPU%  ",
    "        Name (20 chars)       (Junction)  (Socket)  (Mem, Compute)  ",
    _RULE,
    _legacy_row(0, "NPS1, SPX"),
    "        AMD Instinct MI300X",
    _legacy_row(1, "NPS1, SPX"),
    "        AMD Instinct MI300X",
    _legacy_row(2, "NPS4, CPX"),
    "        AMD Instinct MI300X",
    _legacy_row(3, "N/A, N/A"),
    "        AMD Instinct MI300X",
    _RULE,
    "=" * 47 + " End of ROCm SMI Log " + "=" * 48,
    "",
])


def test_legacy_concise_layout() -> None:
    # Devices 2 and 3 are edited to show a disagreement and an N/A row.
    assert _summary(LEGACY) == ("rocm-smi-concise-legacy", "MIXED", "MIXED", 4, 1)
    assert parse_text(LEGACY.replace("NPS4, CPX", "NPS1, SPX")).compute_partition == "SPX"


@pytest.mark.parametrize("shift", [-3, -1, 1, 2, 3, 4, 5, 8])
def test_concise_row_with_misaligned_partition_cell(
    smi_text: Callable[[str], str], shift: int
) -> None:
    # A value wider (or narrower) than its column shifts the partition cell of one row.
    old = "0       2     0x74a1,   28851"
    new = old.replace(",   ", "," + " " * (3 + shift)) if shift < 0 else old + "9" * shift
    text = smi_text("rocm-smi_default_spx_nps1.txt").replace(old, new)
    assert text != smi_text("rocm-smi_default_spx_nps1.txt")
    assert _summary(text) == ("rocm-smi-concise", "SPX", "NPS1", 8, 0)


def test_amd_smi_table_with_extra_and_missing_columns(smi_text: Callable[[str], str]) -> None:
    lines = smi_text("amd-smi_partition_current_cpx_nps4_64dev_rocm64plus.txt").split("\n")
    # drop ACCELERATOR_PROFILE_INDEX, add a column the newest builds might print
    edited = []
    for line in lines:
        if line.startswith("GPU_ID"):
            edited.append("GPU_ID  MEMORY  ACCELERATOR_TYPE  PARTITION_ID  MEM_ALLOC_MODE")
        elif line[:1].isdigit():
            gpu, memory, kind, _index, partition = line.split()
            edited.append(f"{gpu:<8}{memory:<8}{kind:<18}{partition:<14}CAPPING")
        else:
            edited.append(line)
    assert _summary("\n".join(edited)) == ("amd-smi-table", "CPX", "NPS4", 64, 0)


def test_rocm_smi_csv_mixed_and_na(smi_text: Callable[[str], str]) -> None:
    text = smi_text("rocm-smi_showcomputepartition_showmemorypartition_cpx_nps4_63dev.csv")
    text = text.replace("card5,CPX,NPS4", "card5,SPX,NPS1")
    text = text.replace("card6,CPX,NPS4", "card6,N/A,N/A")
    assert _summary(text) == ("rocm-smi-csv", "MIXED", "MIXED", 63, 1)


def test_rocm_smi_json_missing_key_and_na_values(smi_text: Callable[[str], str]) -> None:
    data = json.loads(smi_text("rocm-smi_showcomputepartition_showmemorypartition_spx_nps1.json"))
    data["card1"] = {"Compute Partition": "N/A", "Memory Partition": "N/A"}
    del data["card2"]["Memory Partition"]
    data["system"] = {"Driver version": "6.10.5"}
    reading = parse_text(json.dumps(data))
    assert (reading.format, reading.compute_partition, reading.memory_partition) == (
        "rocm-smi-json", "SPX", "NPS1")
    assert (reading.devices, reading.unknown_devices) == (8, 2)


@pytest.mark.parametrize("wrapper", ["list", "gpu_data"])
@pytest.mark.parametrize(("key", "value", "expected"), [
    ("compute_partition", "CPX", "CPX"),
    ("accelerator_partition", "dpx", "DPX"),
    ("accelerator_partition", "N/A", None),
])
def test_amd_smi_static_json_shapes(smi_text: Callable[[str], str], wrapper: str, key: str,
                                    value: str, expected: str | None) -> None:
    entries = json.loads(smi_text("amd-smi_static_partition_cpx_nps4_64dev_rocm63.json"))
    for entry in entries:
        entry["partition"] = {key: value, "memory_partition": "NPS2",
                              "partition_id": str(entry["partition"]["partition_id"])}
    data = entries if wrapper == "list" else {"gpu_data": entries}
    reading = parse_text(json.dumps(data, indent=4))
    unknown = 64 if expected is None else 0
    assert (reading.compute_partition, reading.memory_partition, reading.devices,
            reading.unknown_devices) == (expected, "NPS2", 64, unknown)


def test_amd_smi_partition_json_with_profiles_and_na_secondaries(
    smi_text: Callable[[str], str],
) -> None:
    current = json.loads(smi_text("amd-smi_partition_current_spx_nps1_8dev_rocm7.json"))
    rows = current["current_partition"]
    for row in rows[1:]:  # the third-party report: only the primary row carries values
        row.update(memory="N/A", accelerator_type="N/A", partition_id="N/A")
    data = {
        **current,
        "partition_profiles": [
            {"gpu_id": 0, "profile_index": 0, "memory_partition_caps": "NPS1",
             "accelerator_type": "SPX*", "num_partitions": 1, "resource_type": "XCC"},
            {"gpu_id": "", "profile_index": "", "memory_partition_caps": "",
             "accelerator_type": "", "num_partitions": "", "resource_type": "DMA"},
            {"gpu_id": "", "profile_index": 3, "memory_partition_caps": "NPS1,NPS4",
             "accelerator_type": "CPX", "num_partitions": 8, "resource_type": "XCC"},
        ],
        "partition_resources": [],
    }
    reading = parse_text("WARNING: some notice printed before the JSON\n" + json.dumps(data))
    assert reading.format == "amd-smi-json"
    assert (reading.compute_partition, reading.memory_partition) == ("SPX", "NPS1")
    assert (reading.devices, reading.unknown_devices) == (8, 7)
    assert reading.device_readings[0] == DeviceReading("0", "SPX", "NPS1")


def test_amd_smi_default_view_cpx_with_na_secondaries(smi_text: Callable[[str], str]) -> None:
    # ROCm 7 in CPX: the primary shows CPX/NPS4, secondaries N/A (amdsmi changelog, S7).
    lines = []
    for line in smi_text("amd-smi_default_spx_nps1_rocm70_changelog.txt").split("\n"):
        cells = line.split("|")
        if len(cells) > 2 and "SPX/NPS1" in cells[1]:
            primary = cells[1].split()[0] == "0"
            lines.append(line.replace("SPX/NPS1", "CPX/NPS4" if primary else "     N/A", 1))
        else:
            lines.append(line)
    reading = parse_text("\n".join(lines))
    assert (reading.format, reading.compute_partition, reading.memory_partition) == (
        "amd-smi-default", "CPX", "NPS4")
    assert (reading.devices, reading.unknown_devices) == (8, 7)


def test_rocm_smi_text_with_new_mode_names(smi_text: Callable[[str], str]) -> None:
    text = smi_text("rocm-smi_showallinfo_partition_sections_spx_nps1_excerpt.txt")
    text = text.replace("Compute Partition: SPX", "Compute Partition: dpx").replace(
        "Memory Partition: NPS1", "Memory Partition: NPS2")
    assert _summary(text) == ("rocm-smi-text", "DPX", "NPS2", 4, 0)


def test_amd_smi_text_failed_set_is_unknown(smi_text: Callable[[str], str]) -> None:
    success = "ACCELERATOR_PARTITION: Successfully set accelerator partition to CPX (profile #3)"
    failure = "ACCELERATOR_PARTITION: [AMDSMI_STATUS_BUSY] Unable to set accelerator partition"
    text = smi_text("amd-smi_set_compute_partition_cpx_docs.txt").replace(
        f"GPU: 3\n    {success}", f"GPU: 3\n    {failure}")
    assert _summary(text) == ("amd-smi-text", "CPX", None, 8, 1)


def test_amd_smi_csv_with_partition_columns(smi_text: Callable[[str], str]) -> None:
    # `amd-smi static --partition --csv`: the JSON fixture's values in CSV columns.
    entries = json.loads(smi_text("amd-smi_static_partition_cpx_nps4_64dev_rocm63.json"))
    rows = ["gpu,accelerator_partition,memory_partition,partition_id"]
    rows += [f"{e['gpu']},{e['partition']['compute_partition']},"
             f"{e['partition']['memory_partition']},{e['partition']['partition_id']}"
             for e in entries]
    rows[5] = "4,N/A,N/A,4"
    assert _summary("\r\n".join(rows)) == ("amd-smi-csv", "CPX", "NPS4", 64, 1)


def test_amd_smi_monitor_after_a_warning(smi_text: Callable[[str], str]) -> None:
    text = smi_text("amd-smi_monitor_p_t_v_32logical_rocm63_changelog.txt")
    warned = "WARNING: User is missing the following required groups: render, video\n\n" + text
    assert _summary(warned) == ("amd-smi-monitor", None, None, 32, 0)


def test_amd_smi_blocks_of_other_kinds_end_a_gpu_block(smi_text: Callable[[str], str]) -> None:
    text = smi_text("amd-smi_static_partition_mi300a_spx_nps1_rocm633.txt")
    text += "\nCPU: 0\n    PARTITION:\n        MEMORY_PARTITION: NPS4\n"
    # the CPU block's value is not GPU 3's, and a CPU is no logical GPU
    reading = parse_text(text)
    assert reading.device_readings[3] == DeviceReading("3", "SPX", "NPS1")
    assert (reading.memory_partition, reading.devices) == ("NPS1", 4)


def test_amd_smi_partition_keys_without_gpu_line() -> None:
    excerpt = "    PARTITION:\n        COMPUTE_PARTITION: CPX\n        MEMORY_PARTITION: NPS4\n"
    assert _summary(excerpt) == ("amd-smi-text", "CPX", "NPS4", 1, 0)


def _as_captured_elsewhere(text: str) -> str:
    """The same output as a terminal log or a web page gives it: CRLF, tabs expanded,
    trailing blanks stripped, colour resets at line ends."""
    lines = [line.expandtabs().rstrip() + "\x1b[0m" for line in text.split("\n")]
    return "\r\n".join(lines)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_variations_do_not_change_the_reading(
    smi_text: Callable[[str], str], name: str
) -> None:
    assert _summary(_as_captured_elsewhere(smi_text(name))) == EXPECTED[name]
