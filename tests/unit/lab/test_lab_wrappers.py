"""install_host's bin/ wrappers, run as real processes the way Ansible runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleetbench.lab import gpu, smi


def test_wrappers_run_as_processes_on_path(tmp_path: Path) -> None:
    host = tmp_path / "lab07"
    smi.install_host(host, gpu.GpuState(rocm="7.0.2", set_delay_s=0), sys.executable)
    for tool in ("rocm-smi", "amd-smi"):
        wrapper = host / "bin" / tool
        assert os.access(wrapper, os.X_OK)
        assert wrapper.read_text().splitlines()[0] == "#!/bin/sh"
        simulator = host / "bin" / f".{tool}.py"
        assert simulator.read_text().splitlines()[0] == f"#!{sys.executable}"
    env = {**os.environ, "PATH": f"{host / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )

    shown = run("rocm-smi", "--showcomputepartition", "--showmemorypartition", "--json")
    assert shown.returncode == 0
    cards = json.loads(shown.stdout)
    assert len(cards) == 64
    assert cards["card63"] == {"Compute Partition": "CPX", "Memory Partition": "NPS4"}

    version = run("amd-smi", "version")
    assert "| ROCm version: 7.0.2 |" in version.stdout

    concise = run("rocm-smi", "--json")
    assert (concise.returncode, concise.stdout) == (
        1,
        "NOT_SUPPORTED: Cannot print JSON/CSV output for concise output\n",
    )

    requested = run("amd-smi", "set", "-M", "NPS1", stdin="y\n")
    assert requested.returncode == 0, requested.stderr
    assert gpu.GpuState.load(host / gpu.STATE_FILE).pending_memory == "NPS1"
    reloaded = run("amd-smi", "reset", "-r")
    assert reloaded.returncode == 0, reloaded.stderr
    memory = host / "root/sys/bus/pci/devices/0000:05:00.0/current_memory_partition"
    assert memory.read_text() == "NPS1\n"

    usage = run("amd-smi", "static", "--bogus")
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: amd-smi")
    assert usage.stderr.endswith("error: unrecognized arguments: --bogus\n")
