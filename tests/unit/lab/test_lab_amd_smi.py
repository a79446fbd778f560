"""Simulated amd-smi against the real captures in tests/fixtures/smi."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbench.lab import gpu

NODES = "root/sys/class/kfd/kfd/topology/nodes"


def blocks(text: str) -> list[list[str]]:
    """amd-smi per-GPU output as lists of stripped lines, one per ``GPU: n`` block."""
    result: list[list[str]] = []
    for line in text.splitlines():
        if line.strip().startswith("GPU: "):
            result.append([line.strip()])
        elif line.strip() and line.strip() != "..." and result:
            result[-1].append(line.strip())
    return result


def keys(block: list[str]) -> list[str]:
    return [line.split(":")[0] for line in block]


def state(host: Path) -> gpu.GpuState:
    return gpu.GpuState.load(host / gpu.STATE_FILE)


@pytest.mark.parametrize("rocm", ["6.3.1", "6.4.0", "6.4.1", "6.4.2", "7.0.2"])
def test_version(make_host: Callable[..., Path], run_tool: Callable[..., Any], rocm: str) -> None:
    host = make_host(rocm=rocm)
    line = run_tool(host, "amd-smi", "version").out
    assert re.fullmatch(
        r"AMDSMI Tool: \d+\.\d+\.\d+\+[0-9a-f]+ \| AMDSMI Library version: [\d.]+ \| "
        rf"ROCm version: {re.escape(rocm)} \| amdgpu version: [\d.]+ \| amd_hsmp version: N/A\n",
        line,
    )
    assert json.loads(run_tool(host, "amd-smi", "version", "--json").out)["rocm_version"] == rocm


@pytest.mark.parametrize("rocm", ["6.3.1", "6.4.0", "6.4.1"])
def test_static_partition_text_up_to_641(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    rocm: str,
) -> None:
    out = run_tool(make_host(rocm=rocm), "amd-smi", "static", "--partition").out
    assert out == smi_fixture("amd-smi_static_partition_cpx_nps4_64dev_docs.txt")


@pytest.mark.parametrize("rocm", ["6.4.2", "7.0.2"])
def test_static_partition_is_accelerator_partition_from_642(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    rocm: str,
) -> None:
    host = make_host(rocm=rocm, compute="SPX", memory="NPS1")
    ours = blocks(run_tool(host, "amd-smi", "static", "-p").out)
    old, new = blocks(
        smi_fixture("amd-smi_static_partition_spx_nps1_rocm642_changelog_old_vs_new.txt")
    )
    assert ours[0] == new
    assert old != new
    assert len(ours) == 8


@pytest.mark.parametrize(
    ("rocm", "settings", "fixture"),
    [
        ("6.3.1", {}, "amd-smi_static_partition_cpx_nps4_64dev_rocm63.json"),
        (
            "7.0.2",
            {"compute": "SPX", "memory": "NPS1"},
            "amd-smi_static_partition_spx_nps1_8dev_rocm7.json",
        ),
    ],
)
def test_static_partition_json(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    rocm: str,
    settings: dict[str, str],
    fixture: str,
) -> None:
    out = run_tool(make_host(rocm=rocm, **settings), "amd-smi", "static", "-p", "--json").out
    assert out == smi_fixture(fixture)


def test_static_partition_json_shapes_between_releases(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    def first(rocm: str) -> Any:
        return json.loads(run_tool(make_host(rocm=rocm), "amd-smi", "static", "-p", "--json").out)

    assert first("6.4.1")[0]["partition"]["compute_partition"] == "CPX"
    assert first("6.4.2")[0]["partition"]["accelerator_partition"] == "CPX"
    assert list(first("7.0")) == ["gpu_data"]


@pytest.mark.parametrize("rocm", ["6.4.0", "6.4.2", "7.0.2"])
def test_partition_current_text(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    rocm: str,
) -> None:
    out = run_tool(make_host(rocm=rocm), "amd-smi", "partition", "--current").out
    assert out == smi_fixture("amd-smi_partition_current_cpx_nps4_64dev_rocm64plus.txt")


def test_partition_current_on_rocm63_lists_ids_on_the_primary(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    out = run_tool(make_host(rocm="6.3", memory="NPS1"), "amd-smi", "partition", "--current").out
    real = smi_fixture("amd-smi_partition_current_cpx_nps1_rocm640_changelog_previous.txt")
    shown = [line.rstrip() for line in real.splitlines()[1:] if line != "..."]
    assert [line.rstrip() for line in out.splitlines()[: len(shown)]] == shown
    assert len(out.splitlines()) == 3 + 64


def test_partition_current_json(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    spx7 = make_host(rocm="7.0.2", compute="SPX", memory="NPS1")
    out = run_tool(spx7, "amd-smi", "partition", "--current", "--json").out
    assert out == smi_fixture("amd-smi_partition_current_spx_nps1_8dev_rocm7.json")
    rows = json.loads(run_tool(make_host(rocm="6.4.1"), "amd-smi", "partition", "-c", "--json").out)
    assert rows[9] == {
        "gpu_id": 9,
        "memory": "NPS4",
        "accelerator_type": "CPX",
        "accelerator_profile_index": 3,
        "partition_id": "1",
    }


def test_list_json_matches_the_rocm7_capture(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(rocm="7.0.2")
    for args, fixture in (
        ((), "amd-smi_list_cpx_nps4_64dev_rocm7.json"),
        (("-e",), "amd-smi_list_e_cpx_nps4_64dev_rocm7.json"),
    ):
        ours = json.loads(run_tool(host, "amd-smi", "list", *args, "--json").out)
        real = json.loads(smi_fixture(fixture))
        assert len(ours) == len(real) == 64
        for mine, theirs in zip(ours, real, strict=True):
            assert list(mine) == list(theirs)
            same = ("gpu", "node_id", "partition_id", "render", "card", "hsa_id", "hip_id")
            assert {k: mine[k] for k in same if k in theirs} == {
                k: theirs[k] for k in same if k in theirs
            }
            assert re.fullmatch(r"0000:[0-9a-f]{2}:00\.[0-7]", mine["bdf"])
            assert mine["bdf"][-1] == str(mine["partition_id"])
            assert re.fullmatch(
                r"[0-9a-f]{2}ff74a1-0000-1000-80[0-9a-f]{2}-[0-9a-f]{12}", mine["uuid"]
            )
            if "oam_id" in theirs:
                assert (mine["oam_id"] == "N/A") == (theirs["oam_id"] == "N/A")
        assert len({e["uuid"] for e in ours}) == 8


def test_list_text_fields_per_release(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    old = blocks(run_tool(make_host(rocm="6.3.1"), "amd-smi", "list").out)
    assert keys(old[0]) == keys(blocks(smi_fixture("amd-smi_list_rocm63_changelog.txt"))[0])
    assert len(old) == 64
    fixed = blocks(run_tool(make_host(rocm="6.4.1"), "amd-smi", "list", "-e").out)
    real = blocks(smi_fixture("amd-smi_list_e_cpx_rocm641_changelog_corrected.txt"))
    assert [keys(b) for b in fixed[:2]] == [keys(b) for b in real]
    assert fixed[1][6:8] == ["RENDER: renderD129", "CARD: card2"]
    buggy = blocks(run_tool(make_host(rocm="6.4.0"), "amd-smi", "list", "-e").out)
    previous = blocks(smi_fixture("amd-smi_list_e_cpx_rocm641_changelog_previous.txt"))
    assert buggy[1][6:8] == previous[1][6:8] == ["RENDER: N/A", "CARD: N/A"]
    assert run_tool(make_host(rocm="6.3.1"), "amd-smi", "list", "-e").code == 2


def test_63_partitions_everywhere(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(partitions="63")
    assert len(json.loads(run_tool(host, "amd-smi", "list", "--json").out)) == 63
    assert len(blocks(run_tool(host, "amd-smi", "static", "-p").out)) == 63
    assert len(run_tool(host, "amd-smi", "partition", "--current").out.splitlines()) == 2 + 63


@pytest.mark.parametrize("value", ["CPX", "cpx", "3"])
def test_set_compute_partition(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    value: str,
) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    result = run_tool(host, "amd-smi", "set", "--gpu", "all", "--compute-partition", value)
    assert (result.code, result.err) == (0, "")
    assert result.out == smi_fixture("amd-smi_set_compute_partition_cpx_docs.txt")
    assert state(host).compute == "CPX"
    assert len(list((host / NODES).iterdir())) == 66


def test_set_compute_partition_back_to_spx(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(gpus="1", memory="NPS1")  # one CPX GPU: GPU 0-7 as in the capture
    result = run_tool(host, "amd-smi", "set", "-C", "SPX")
    assert result.out == smi_fixture("amd-smi_set_compute_partition_spx_docs.txt")
    assert state(host).compute == "SPX"
    assert sorted(p.name for p in (host / NODES).iterdir()) == ["0", "1", "2"]


def test_set_compute_partition_on_rocm63_uses_the_old_key(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(rocm="6.3", compute="SPX", memory="NPS1")
    result = run_tool(host, "amd-smi", "set", "-C", "CPX")
    assert blocks(result.out)[0] == [
        "GPU: 0",
        "COMPUTEPARTITION: Successfully set compute partition to CPX",
    ]
    assert run_tool(host, "amd-smi", "set", "-C", "3").code == 2  # no profile index before 6.4


@pytest.mark.parametrize(
    ("settings", "fixture"),
    [
        (
            {"compute": "SPX", "memory": "NPS1", "busy": "true"},
            "amd-smi_set_compute_partition_error_busy_docs.txt",
        ),
        (
            {"compute": "SPX", "memory": "NPS1", "noperm": "true"},
            "amd-smi_set_compute_partition_error_noperm_docs.txt",
        ),
        ({}, "amd-smi_set_compute_partition_spx_while_nps4_error_docs.txt"),
    ],
)
def test_set_compute_partition_failures(
    make_host: Callable[..., Path],
    run_tool: Callable[..., Any],
    smi_fixture: Callable[[str], str],
    settings: dict[str, str],
    fixture: str,
) -> None:
    host = make_host(**settings)
    before = (host / gpu.STATE_FILE).read_text()
    tree_before = host / "root/sys/bus/pci/devices/0000:05:00.0/current_compute_partition"
    compute_before = tree_before.read_text()
    result = run_tool(host, "amd-smi", "set", "-C", "SPX")
    assert result.code == 1
    real = smi_fixture(fixture).replace("BDF:0000:11:00.0", "BDF:0000:05:00.0")
    printed = [line for line in (result.out + result.err).splitlines() if line]
    assert printed == [line for line in real.splitlines() if line]
    assert (host / gpu.STATE_FILE).read_text() == before
    assert tree_before.read_text() == compute_before


def test_set_memory_partition_nps4_from_spx(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    result = run_tool(host, "amd-smi", "set", "-M", "NPS4", stdin="Y\n")
    assert result.code == 0
    real = smi_fixture("amd-smi_set_memory_partition_nps4_docs.txt")
    warning = [line.strip() for line in real.split("Do you accept")[0].splitlines()]
    assert [line.strip() for line in result.out.split("Do you accept")[0].splitlines()][1:] == (
        warning
    )
    assert "Do you accept these terms? [Y/N] " in result.out
    bar = r"Updating memory partition for gpu 0: \[[█.]{40}\] \d+/140 secs remain"
    assert re.search(bar, result.out)
    assert re.search(bar, real)
    ours = blocks(result.out)
    assert len(ours) == 8
    assert (
        ours[0]
        == blocks(real)[0]
        == ["GPU: 0", "MEMORY_PARTITION: Successfully set memory partition to NPS4"]
    )
    assert (state(host).compute, state(host).memory) == ("CPX", "NPS4")  # SPX -> CPX (AMD docs)
    assert (
        host / "root/sys/bus/pci/devices/0000:05:00.0/current_memory_partition"
    ).read_text() == "NPS4\n"


def test_set_memory_partition_on_rocm63(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    host = make_host(rocm="6.3", memory="NPS4")
    result = run_tool(host, "amd-smi", "set", "-M", "NPS1", stdin="y\n")
    real = smi_fixture("amd-smi_set_memory_partition_nps1_rocm63_changelog.txt")
    assert blocks(result.out)[:3] == blocks(real)
    assert re.search(
        r"Updating memory partition for gpu 0: \[[█.]{40}\] 0/40 secs remain", result.out
    )
    assert state(host).memory == "NPS1"


def test_set_memory_partition_failures_keep_the_state(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    busy = make_host(busy="true")
    result = run_tool(busy, "amd-smi", "set", "-M", "NPS1", stdin="y\n")
    assert result.code == 0  # per-GPU failures are reported, not raised
    assert blocks(result.out)[0] == [
        "GPU: 0",
        "MEMORY_PARTITION: [AMDSMI_STATUS_BUSY] Unable to set memory partition to NPS1",
    ]
    assert state(busy).memory == "NPS4"
    noperm = make_host(noperm="true")
    denied = run_tool(noperm, "amd-smi", "set", "-M", "NPS1", stdin="y\n")
    assert denied.code == 1
    assert denied.err.endswith("PermissionError: Command requires elevation\n")
    assert state(noperm).memory == "NPS4"
    closed = run_tool(make_host(), "amd-smi", "set", "-M", "NPS1")
    assert (closed.code, closed.err) == (1, "EOFError: EOF when reading a line\n")
    dpx = make_host(compute="DPX", memory="NPS1")
    refused = run_tool(dpx, "amd-smi", "set", "-M", "NPS4", stdin="y\n")
    assert "[AMDSMI_STATUS_SETTING_UNAVAILABLE] Unable to set memory partition to NPS4" in (
        refused.out
    )
    assert state(dpx).memory == "NPS1"


def test_rocm7_memory_partition_applies_after_driver_reload(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(rocm="7.0.2", compute="SPX", memory="NPS1")
    result = run_tool(host, "amd-smi", "set", "-M", "NPS4", stdin="y\n")
    assert result.code == 0
    assert "secs remain" not in result.out  # no reload, no bar
    assert (state(host).memory, state(host).pending_memory) == ("NPS1", "NPS4")
    memory_file = host / "root/sys/bus/pci/devices/0000:05:00.0/current_memory_partition"
    assert memory_file.read_text() == "NPS1\n"
    reload = run_tool(host, "amd-smi", "reset", "-r")
    assert reload.code == 0
    assert (state(host).compute, state(host).memory, state(host).pending_memory) == (
        "CPX",
        "NPS4",
        None,
    )
    assert memory_file.read_text() == "NPS4\n"
    assert run_tool(make_host(rocm="6.4.1"), "amd-smi", "reset", "--reload-driver").code == 2


def test_argparse_errors_look_like_amd_smi(
    make_host: Callable[..., Path], run_tool: Callable[..., Any], smi_fixture: Callable[[str], str]
) -> None:
    result = run_tool(make_host(), "amd-smi", "set", "-C", "TPX")
    real = smi_fixture("amd-smi_set_compute_partition_argparse_error_rocm643_py313.txt")
    assert result.code == 2
    assert result.err.startswith("usage: amd-smi set [-h]")
    assert real.splitlines()[1].startswith("usage: amd-smi set [-h]")
    prefix = "amd-smi set: error: argument -C/--compute-partition: invalid choice: "
    assert result.err.splitlines()[-1].startswith(prefix + "'TPX'")
    assert real.splitlines()[-1].startswith(prefix)
    assert run_tool(make_host(), "amd-smi", "frobnicate").code == 2
    unsimulated = run_tool(make_host(), "amd-smi", "metric", "-m")
    assert unsimulated.code == 2
    assert "amd-smi metric is not simulated" in unsimulated.err
    assert run_tool(make_host(), "amd-smi", "set").code == 2  # -C or -M is required


def test_concurrent_set_operations_are_serialised(
    make_host: Callable[..., Path], run_tool: Callable[..., Any]
) -> None:
    host = make_host(compute="SPX", memory="NPS1", set_delay="0.4")
    codes: list[int] = []

    def set_mode(mode: str) -> None:
        codes.append(run_tool(host, "amd-smi", "set", "-C", mode).code)

    started = time.monotonic()
    threads = [threading.Thread(target=set_mode, args=(m,)) for m in ("DPX", "QPX")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.8
    assert codes == [0, 0]
    assert state(host).compute in ("DPX", "QPX")
    nodes = len(list((host / NODES).iterdir())) - 2
    assert nodes == 8 * gpu.PARTITIONS_PER_GPU[state(host).compute]
