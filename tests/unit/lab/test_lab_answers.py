"""The check probe's read-only queries, answered by the bin/ sh wrappers from rendered outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbench.lab import gpu, smi
from tests.conftest import module_util

ROCM_QUERY = ("--showcomputepartition", "--showmemorypartition", "--json")
AMD_QUERY = ("static", "--partition", "--json")


def probe_commands(monkeypatch: pytest.MonkeyPatch) -> Any:
    """SMI_COMMANDS of module_utils/fleetbench_host.py, loaded the way Ansible names it."""
    monkeypatch.delitem(sys.modules, "ansible.module_utils.fleetbench_host", raising=False)
    return module_util("fleetbench_host").SMI_COMMANDS


def install(host: Path, state: gpu.GpuState, python: str = sys.executable) -> Path:
    """install_host in ``host``; returns it."""
    smi.install_host(host, state, python)
    return host


def call(host: Path, tool: str, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the installed bin/ wrapper as a process, as the probe does."""
    return subprocess.run(
        [str(host / "bin" / tool), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def same(done: subprocess.CompletedProcess[str], result: Any) -> bool:
    return (done.returncode, done.stdout, done.stderr) == (result.code, result.out, result.err)


def test_answered_queries_are_the_probe_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = probe_commands(monkeypatch)
    assert [(tool, tuple(argv)) for tool, argv in commands] == list(gpu.ANSWERED_QUERIES)
    assert (("amd-smi", AMD_QUERY), ("rocm-smi", ROCM_QUERY)) == gpu.ANSWERED_QUERIES


MODES = [(c, m) for c in gpu.COMPUTE_MODES for m in gpu.MEMORY_CAPS[c]]
# Two GPUs keep the renders quick and still have secondary partitions (ROCm 6.4.1 quirks).
STATES = [
    *(
        gpu.GpuState(compute=c, memory=m, rocm=r, gpus=2)
        for r in gpu.ROCM_RELEASES
        for c, m in MODES
    ),
    *(gpu.GpuState(rocm=r, gpus=2, partitions=15) for r in gpu.ROCM_RELEASES),
    *(gpu.GpuState(rocm=r, gpus=2, busy=True, noperm=True) for r in ("6.3.1", "6.4.1", "7.0.2")),
    gpu.GpuState(compute="QPX", memory="NPS1", rocm="6.4.1", gpus=3, partitions=5),
    gpu.GpuState(rocm="7.0.2", gpus=2, pending_memory="NPS1"),
    gpu.GpuState(rocm="6.4.1"),
    gpu.GpuState(rocm="7.0.2", partitions=63),
]


def state_id(state: gpu.GpuState) -> str:
    flags = [f"{k}={v}" for k, v in (("partitions", state.partitions),) if v is not None]
    flags += [f for f in ("busy", "noperm") if getattr(state, f)]
    if state.pending_memory:
        flags.append(f"pending={state.pending_memory}")
    return "-".join([state.rocm, state.compute, state.memory, f"{state.gpus}gpu", *flags])


@pytest.mark.parametrize("state", STATES, ids=state_id)
def test_sh_answer_is_the_simulator_output(
    tmp_path: Path, run_tool: Callable[..., Any], state: gpu.GpuState
) -> None:
    # No Python behind the wrappers: whatever they print came from the rendered answers.
    host = install(tmp_path / "lab01", state, python=str(tmp_path / "no-python"))
    for tool, argv in gpu.ANSWERED_QUERIES:
        done = call(host, tool, *argv)
        assert same(done, run_tool(host, tool, *argv)), (tool, done.stderr)
        assert done.returncode == 0
        assert json.loads(done.stdout)


def test_sh_answer_equals_python_process(tmp_path: Path) -> None:
    host = install(tmp_path / "lab01", gpu.GpuState(rocm="6.4.1", partitions=63))
    for tool, argv in gpu.ANSWERED_QUERIES:
        answered = call(host, tool, *argv)
        simulated = subprocess.run(
            [sys.executable, str(host / "bin" / f".{tool}.py"), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (answered.returncode, answered.stdout, answered.stderr) == (
            simulated.returncode,
            simulated.stdout,
            simulated.stderr,
        )


def test_answer_follows_set_through_the_simulator(tmp_path: Path) -> None:
    host = install(tmp_path / "lab01", gpu.GpuState(rocm="6.4.2", set_delay_s=0))
    assert set(json.loads(call(host, "rocm-smi", *ROCM_QUERY).stdout)["card63"].values()) == {
        "CPX",
        "NPS4",
    }
    changed = call(host, "rocm-smi", "--setmemorypartition", "NPS1", "--autorespond", "y")
    assert changed.returncode == 0, changed.stderr
    cards = json.loads(call(host, "rocm-smi", *ROCM_QUERY).stdout)
    assert cards["card63"] == {"Compute Partition": "CPX", "Memory Partition": "NPS1"}

    changed = call(host, "amd-smi", "set", "-C", "SPX")
    assert changed.returncode == 0, changed.stderr
    cards = json.loads(call(host, "rocm-smi", *ROCM_QUERY).stdout)
    assert list(cards) == [f"card{i}" for i in range(8)]
    assert cards["card7"] == {"Compute Partition": "SPX", "Memory Partition": "NPS1"}
    static = json.loads(call(host, "amd-smi", *AMD_QUERY).stdout)
    assert static[7] == {
        "gpu": 7,
        "partition": {
            "accelerator_partition": "SPX",
            "memory_partition": "NPS1",
            "partition_id": 0,
        },
    }
    # One generation of answers is left, the one `current` names.
    answers = host / gpu.ANSWERS_DIR
    generations = [p.name for p in answers.iterdir() if p.is_dir()]
    assert generations == [(answers / gpu.ANSWERS_CURRENT).read_text().strip()]


def test_rocm7_memory_request_shows_after_reload(
    tmp_path: Path, run_tool: Callable[..., Any]
) -> None:
    host = install(tmp_path / "lab01", gpu.GpuState(rocm="7.0.2", set_delay_s=0), "no-python")
    assert run_tool(host, "amd-smi", "set", "-M", "NPS1", stdin="y\n").code == 0
    partition = json.loads(call(host, "amd-smi", *AMD_QUERY).stdout)["gpu_data"][0]["partition"]
    assert partition["memory_partition"] == "NPS4"  # pending until the driver reloads
    assert run_tool(host, "amd-smi", "reset", "-r").code == 0
    partition = json.loads(call(host, "amd-smi", *AMD_QUERY).stdout)["gpu_data"][0]["partition"]
    assert (partition["accelerator_partition"], partition["memory_partition"]) == ("CPX", "NPS1")


@pytest.mark.parametrize(
    ("tool", "argv"),
    [
        ("amd-smi", ("static", "--partition")),
        ("amd-smi", ("static", "--json", "--partition")),
        ("amd-smi", (*AMD_QUERY, "-g", "0")),
        ("rocm-smi", ("--showcomputepartition --showmemorypartition", "--json")),
        ("rocm-smi", ROCM_QUERY[:2]),
        ("rocm-smi", AMD_QUERY),
    ],
)
def test_other_queries_run_the_simulator(
    tmp_path: Path, run_tool: Callable[..., Any], tool: str, argv: tuple[str, ...]
) -> None:
    host = install(tmp_path / "lab01", gpu.GpuState(rocm="6.4.2"))
    assert same(call(host, tool, *argv), run_tool(host, tool, *argv))
    broken = install(tmp_path / "lab02", gpu.GpuState(rocm="6.4.2"), str(tmp_path / "no-python"))
    assert call(broken, tool, *argv).returncode == 127  # exec of the simulator


def test_no_answers_unless_the_state_is_the_saved_one(tmp_path: Path) -> None:
    host = install(tmp_path / "lab01", gpu.GpuState(), str(tmp_path / "no-python"))
    assert call(host, "rocm-smi", *ROCM_QUERY).returncode == 0
    # A tree rendered for a state that was never saved: the simulator would answer from the
    # saved one, so the wrappers must not print rendered answers.
    smi.render_host(host, gpu.GpuState(compute="SPX", memory="NPS1"))
    assert not (host / gpu.ANSWERS_DIR / gpu.ANSWERS_CURRENT).exists()
    assert call(host, "rocm-smi", *ROCM_QUERY).returncode == 127
    (host / gpu.STATE_FILE).unlink()
    smi.render_host(host, gpu.GpuState())
    assert call(host, "amd-smi", *AMD_QUERY).returncode == 127


def test_readers_see_whole_answers_while_the_state_changes(tmp_path: Path) -> None:
    modes = (gpu.GpuState(rocm="7.0.2"), gpu.GpuState(compute="SPX", memory="NPS1", rocm="7.0.2"))
    host = install(tmp_path / "lab01", modes[0])
    expected = {call(host, "amd-smi", *AMD_QUERY).stdout}
    smi.install_host(host, modes[1], sys.executable)
    expected.add(call(host, "amd-smi", *AMD_QUERY).stdout)
    done = threading.Event()

    def flip() -> None:
        index = 0
        while not done.is_set():
            with gpu.state_lock(host):
                modes[index % 2].save(host / gpu.STATE_FILE)
                smi.render_host(host, modes[index % 2])
            index += 1

    writer = threading.Thread(target=flip)
    writer.start()
    try:
        seen = [call(host, "amd-smi", *AMD_QUERY) for _ in range(60)]
    finally:
        done.set()
        writer.join()
    assert {(d.returncode, d.stderr) for d in seen} == {(0, "")}
    assert {d.stdout for d in seen} == expected


def test_install_writes_sh_wrappers_beside_the_simulator(tmp_path: Path) -> None:
    host = install(tmp_path / "lab 01 'quoted'", gpu.GpuState())
    for tool in ("rocm-smi", "amd-smi"):
        wrapper = (host / "bin" / tool).read_text()
        assert wrapper.startswith("#!/bin/sh\n")
        assert f"'\"'\"'quoted'\"'\"'/bin/.{tool}.py" in wrapper
        simulator = host / "bin" / f".{tool}.py"
        assert simulator.read_text().startswith(f"#!{sys.executable}\n")
    assert call(host, "rocm-smi", *ROCM_QUERY).returncode == 0
    assert call(host, "amd-smi", "version").returncode == 0
