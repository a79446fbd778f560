"""Simulated rocm-smi against the real captures in tests/fixtures/smi."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbench.lab import gpu

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOT_641 = ["6.3.1", "6.4.0", "6.4.2", "7.0.2"]


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def table(text: str) -> tuple[list[str], list[str]]:
    """(the 7 lines up to the header rule, the device rows) of a concise table."""
    lines = strip_ansi(text).splitlines()
    rows = [line for line in lines[7:] if line and not line.startswith("=")]
    return lines[:7], rows


def shape(row: str) -> tuple[str, ...]:
    """A row's tokens with numbers and mode names generalised."""
    generic = re.sub(r"\d+", "9", row)
    generic = re.sub(r"\b(SPX|DPX|QPX|CPX)\b", "MODE", generic)
    return tuple(generic.split())


@pytest.mark.parametrize("rocm", NOT_641)
def test_default_table_has_the_real_layout(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    rocm: str,
) -> None:
    result = run_tool(make_host(rocm=rocm), "rocm-smi")
    assert result.code == 0
    head, rows = table(result.out)
    real_head, real_rows = table(smi_fixture("rocm-smi_default_cpx_nps4_64dev.txt"))
    assert head == real_head
    assert len(rows) == len(real_rows) == 64
    assert {shape(r) for r in rows} == {shape(r) for r in real_rows}
    assert {len(r) for r in rows} == {len(head[4])}  # every row as wide as the header
    assert [r.split()[6:9] for r in rows[:9]] == [["NPS4,", "CPX,", str(p)] for p in [*range(8), 0]]
    assert (
        strip_ansi(result.out).splitlines()[-2:]
        == (smi_fixture("rocm-smi_default_cpx_nps4_64dev.txt").splitlines()[-2:])
    )


def test_default_table_subheader_is_italic_even_in_a_pipe(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    lines = run_tool(make_host(), "rocm-smi").out.splitlines()
    assert lines[5].startswith("\x1b[3m")
    assert lines[5].endswith("\x1b[0m")
    assert "(Mem, Compute, ID)" in lines[5]


def test_rocm_641_shows_na_for_secondary_partitions(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    head, rows = table(run_tool(make_host(rocm="6.4.1"), "rocm-smi").out)
    real_head, real_rows = table(smi_fixture("rocm-smi_default_dpx_nps1_rocm641_na.txt"))
    assert head == real_head
    assert len(rows) == 64
    primaries = [r for r in rows if "N/A" not in r]
    assert len(primaries) == 8
    assert {shape(r) for r in rows} == {shape(r) for r in real_rows}
    na = [r for r in rows if "N/A" in r]
    assert [r.split()[8] for r in na[:7]] == [str(p) for p in range(1, 8)]


def test_63_partitions_give_63_rows(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    head, rows = table(run_tool(make_host(rocm="6.4.0", partitions="63"), "rocm-smi").out)
    real_head, real_rows = table(smi_fixture("rocm-smi_default_cpx_nps1_63dev.txt"))
    assert head == real_head
    assert len(rows) == len(real_rows) == 63


@pytest.mark.parametrize(
    ("args", "fixture"),
    [
        (["--showcomputepartition"], "rocm-smi_showcomputepartition_cpx_63dev.txt"),
        (["--showmemorypartition"], "rocm-smi_showmemorypartition_nps4_63dev.txt"),
        (["--showcomputepartition", "--json"], "rocm-smi_showcomputepartition_cpx_63dev.json"),
        (["--showmemorypartition", "--json"], "rocm-smi_showmemorypartition_nps4_63dev.json"),
        (["--showmeminfo", "vram"], "rocm-smi_showmeminfo_vram_cpx_nps4_63dev.txt"),
        (["--showmeminfo", "vram", "--json"], "rocm-smi_showmeminfo_vram_cpx_nps4_63dev.json"),
        (
            ["--showcomputepartition", "--showmemorypartition", "--csv"],
            "rocm-smi_showcomputepartition_showmemorypartition_cpx_nps4_63dev.csv",
        ),
    ],
)
@pytest.mark.parametrize("rocm", NOT_641)
def test_views_of_a_63_partition_cpx_host_equal_the_captures(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    args: list[str],
    fixture: str,
    rocm: str,
) -> None:
    result = run_tool(make_host(rocm=rocm, partitions="63"), "rocm-smi", *args)
    assert (result.code, result.err) == (0, "")
    assert result.out == smi_fixture(fixture)


@pytest.mark.parametrize(
    ("args", "fixture"),
    [
        (["--showcomputepartition"], "rocm-smi_showcomputepartition_spx.txt"),
        (["--showmemorypartition"], "rocm-smi_showmemorypartition_nps1.txt"),
        (
            ["--showcomputepartition", "--showmemorypartition", "--json"],
            "rocm-smi_showcomputepartition_showmemorypartition_spx_nps1.json",
        ),
    ],
)
def test_views_of_an_spx_host_equal_the_captures(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    args: list[str],
    fixture: str,
) -> None:
    host = make_host(rocm="6.3", compute="SPX", memory="NPS1")
    assert run_tool(host, "rocm-smi", *args).out == smi_fixture(fixture)


def test_both_partition_sections_in_the_real_order(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    out = run_tool(
        make_host(compute="SPX", memory="NPS1"),
        "rocm-smi",
        "--showcomputepartition",
        "--showmemorypartition",
    ).out
    excerpt = smi_fixture("rocm-smi_showallinfo_partition_sections_spx_nps1_excerpt.txt")
    skeleton = [line for line in excerpt.splitlines() if not line.startswith("GPU[")]
    assert [line for line in out.splitlines()[3:] if not line.startswith("GPU[")] == skeleton
    assert out.count("Compute Partition: SPX") == out.count("Memory Partition: NPS1") == 8


def test_rocm_641_partition_views_say_not_supported_for_secondaries(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    out = run_tool(
        make_host(rocm="6.4.1", partitions="63"), "rocm-smi", "--showcomputepartition"
    ).out
    real = smi_fixture("rocm-smi_showcomputepartition_cpx_rocm641_na.txt")

    def kinds(text: str) -> list[str]:
        return [re.sub(r"^GPU\[\d+\]", "GPU[n]", line) for line in text.splitlines()]

    assert sorted(kinds(out)) == sorted(kinds(real))
    assert out.splitlines()[4:6] == [
        "GPU[0]\t\t: Compute Partition: CPX",
        "GPU[1]\t\t: Not supported on the given system",
    ]
    cards = json.loads(
        run_tool(make_host(rocm="6.4.1"), "rocm-smi", "--showcomputepartition", "--json").out
    )
    assert sorted(cards, key=lambda c: int(c[4:])) == [f"card{8 * g}" for g in range(8)]


def test_json_alone_is_not_supported(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    result = run_tool(make_host(), "rocm-smi", "--json")
    assert result.code == 1
    assert result.out == smi_fixture("rocm-smi_json_default_concise.txt")


def test_set_compute_partition_from_spx(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    result = run_tool(host, "rocm-smi", "--setcomputepartition", "CPX")
    assert result.code == 0
    assert result.out == smi_fixture("rocm-smi_setcomputepartition_cpx.txt")
    state = gpu.GpuState.load(host / gpu.STATE_FILE)
    assert (state.compute, state.memory) == ("CPX", "NPS1")
    device = host / "root/sys/bus/pci/devices/0000:05:00.0"
    assert (device / "current_compute_partition").read_text() == "CPX\n"
    assert len(list((host / "root/sys/class/kfd/kfd/topology/nodes").iterdir())) == 66


def test_set_while_busy_changes_nothing(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(compute="SPX", memory="NPS1", busy="true")
    before = (host / gpu.STATE_FILE).read_text()
    result = run_tool(host, "rocm-smi", "--setcomputepartition", "CPX")
    assert result.out == smi_fixture("rocm-smi_setcomputepartition_cpx_busy.txt")
    assert result.code == 0  # rocm_smi.py resets RETCODE unless --loglevel says otherwise
    assert (host / gpu.STATE_FILE).read_text() == before
    assert (
        host / "root/sys/bus/pci/devices/0000:05:00.0/current_compute_partition"
    ).read_text() == "SPX\n"
    loud = run_tool(host, "rocm-smi", "--setcomputepartition", "CPX", "--loglevel", "error")
    assert loud.code == 16  # RSMI_STATUS_BUSY


def test_spx_while_nps4_is_unavailable(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(gpus="1")  # one CPX GPU: 8 logical devices as in the capture
    result = run_tool(host, "rocm-smi", "--setcomputepartition", "spx")
    assert result.out == smi_fixture("rocm-smi_setcomputepartition_spx_while_nps4.txt")
    assert gpu.GpuState.load(host / gpu.STATE_FILE).compute == "CPX"


def test_set_without_root_is_denied(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(noperm="true")
    result = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS1", "--autorespond", "y")
    assert result.out.count("\t\t: Permission denied\n") == 64
    assert gpu.GpuState.load(host / gpu.STATE_FILE).memory == "NPS4"


def test_set_memory_partition_nps4_from_spx(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    result = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS4", "--autorespond", "y")
    assert result.code == 0
    bar = re.compile(r"Updating memory partition: \[[█.]{40}\] \d+/140 secs remain")
    ours = result.out.replace("\r", "\n").splitlines()
    real = smi_fixture("rocm-smi_setmemorypartition_nps4.txt").splitlines()
    assert [line for line in ours if not bar.fullmatch(line)] == [
        line for line in real if not bar.fullmatch(line)
    ]
    assert any(bar.fullmatch(line) for line in ours)
    # AMD docs: NPS4 from SPX switches compute to CPX.
    state = gpu.GpuState.load(host / gpu.STATE_FILE)
    assert (state.compute, state.memory) == ("CPX", "NPS4")
    assert len(list((host / "root/sys/class/kfd/kfd/topology/nodes").iterdir())) == 66


def test_set_memory_progress_bar_counts_seconds(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(compute="SPX", memory="NPS1", set_delay="1.2")
    out = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS4", "--autorespond", "y").out
    assert "] 0/140 secs remain\r" in out
    assert "] 1/140 secs remain\r\nGPU[0]\t\t: Successfully set memory partition to NPS4\n" in out


def test_set_memory_partition_needs_confirmation(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host()
    closed = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS1")
    assert closed.code == 1
    assert "Do you accept these terms? [Y/N] " in closed.out
    assert closed.err.endswith("EOFError: EOF when reading a line\n")
    refused = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS1", stdin="n\n")
    assert (refused.code, refused.err) == (
        1,
        "Confirmation not given. Exiting without setting value\n",
    )
    accepted = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS1", stdin="y\n")
    assert accepted.code == 0
    assert gpu.GpuState.load(host / gpu.STATE_FILE).memory == "NPS1"


def test_nps4_from_dpx_is_refused(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(compute="DPX", memory="NPS1")
    result = run_tool(host, "rocm-smi", "--setmemorypartition", "NPS4", "--autorespond", "y")
    assert "GPU[0]\t\t: Device does not support setting to NPS4\n" in result.out
    assert gpu.GpuState.load(host / gpu.STATE_FILE).memory == "NPS1"


def test_unknown_arguments_are_argparse_errors(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    result = run_tool(make_host(), "rocm-smi", "--frobnicate")
    assert result.code == 2
    assert result.err.startswith("usage: rocm-smi")
    assert result.err.endswith("rocm-smi: error: unrecognized arguments: --frobnicate\n")
    bad = run_tool(make_host(), "rocm-smi", "--setcomputepartition", "XPX")
    assert bad.code == 2
    assert "invalid choice: 'XPX'" in bad.err
    unsimulated = run_tool(make_host(), "rocm-smi", "--showid")
    assert unsimulated.code == 2
    assert "rocm-smi --showid is not simulated" in unsimulated.err
