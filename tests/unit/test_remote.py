"""fleetbench.remote: module_utils run by the host's Python from stdin, no AnsiballZ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleetbench import remote
from fleetbench.lab import gpu, smi


def on_host(command: str, data: bytes) -> dict[str, object]:
    """What ``_low_level_execute_command`` gives back: the command through a real shell."""
    done = subprocess.run(["/bin/sh", "-c", command], input=data, capture_output=True,
                          check=False, timeout=60, env={"PATH": os.environ["PATH"]})
    return {"rc": done.returncode, "stdout": done.stdout.decode(),
            "stderr": done.stderr.decode()}


def test_the_probe_runs_from_stdin_with_the_standard_library_only(tmp_path: Path) -> None:
    host = tmp_path / "host"
    smi.install_host(host, gpu.GpuState(), sys.executable)
    args = {"sysfs_root": str(host / "root"), "rocm_path": str(host / "root/opt/rocm"),
            "disk_path": str(tmp_path), "command_timeout": 30,
            "lock_path": str(tmp_path / "work/lock"), "lock_run_id": "run-a"}
    data = remote.payload(remote.PROBE_MODULES, "probe",
                          args)
    # -I -S: no site-packages on the host's Python, so nothing of ansible or fleetbench.
    result = remote.answer(on_host(remote.command(sys.executable), data), "probe",
                           sys.executable)
    assert "failed" not in result, result
    assert len(result["raw"]["kfd_nodes"]) > 64  # type: ignore[index]
    assert result["rocm_version"] == (host / "root/opt/rocm/.info/version").read_text().strip()
    assert result["lock"] == {"taken": True, "owner": json.loads(
        (tmp_path / "work/lock/owner.json").read_text())}
    # A second run finds the lock taken: failed, marked locked, with the holder.
    refused = remote.answer(on_host(remote.command(sys.executable), remote.payload(
        remote.PROBE_MODULES, "probe",
        {**args, "lock_run_id": "run-b"})), "probe", sys.executable)
    assert refused["failed"] and refused["locked"]
    assert "in use by fleetbench run run-a" in str(refused["msg"])


def test_host_side_failures_become_one_clear_message(tmp_path: Path) -> None:
    broken = tmp_path / "fleetbench_broken.py"
    broken.write_text("def go(args):\n    raise RuntimeError('sysfs exploded')\n")
    done = on_host(remote.command(sys.executable),
                   remote.payload(("fleetbench_broken",), "go", {}, folder=tmp_path))
    result = remote.answer(done, "the probe", sys.executable)
    assert result["failed"] and "exit 1" in str(result["msg"])
    assert "RuntimeError: sysfs exploded" in str(result["msg"])

    missing = on_host(remote.command("/nonexistent/python3"), b"{}")
    result = remote.answer(missing, "the probe", "/nonexistent/python3")
    assert result["failed"] and "no /nonexistent/python3 on the host" in str(result["msg"])
    assert "ansible_python_interpreter" in str(result["msg"])

    chatty = remote.answer({"rc": 0, "stdout": "Welcome to host7\n", "stderr": ""}, "the probe",
                           "python3")
    assert chatty["failed"] and "printed no result" in str(chatty["msg"])
    assert "Welcome to host7" in str(chatty["msg"])
    # A login banner or `module load` chatter from the shell's start-up files comes first.
    banner = remote.answer({"rc": 0, "stdout": 'Welcome to host7\n{not json\n{"ok": 1}',
                            "stderr": ""}, "the probe", "python3")
    assert banner == {"ok": 1}


def test_interpreter_choice() -> None:
    assert remote.interpreter({}) == "python3"
    assert remote.interpreter({"ansible_python_interpreter": "auto_silent"}) == "python3"
    assert remote.interpreter({"ansible_python_interpreter": "/usr/bin/python3.12"}) == \
        "/usr/bin/python3.12"
    assert remote.command("/opt/my python/bin/python3").startswith("'/opt/my python/bin/python3'")


class _Action:
    """The two ActionBase entry points run_probe uses, over a real local shell."""

    def __init__(self, pipelining: bool) -> None:
        self._connection = type("Connection", (), {"has_pipelining": pipelining})()
        self._templar = type("Templar", (), {"template": staticmethod(lambda v: v)})()
        self.modules: list[str] = []

    def _low_level_execute_command(self, cmd: str, sudoable: bool,
                                   in_data: bytes) -> dict[str, object]:
        assert sudoable
        return on_host(cmd, in_data)

    def _execute_module(self, module_name: str, module_args: dict[str, object],
                        task_vars: dict[str, object]) -> dict[str, object]:
        self.modules.append(module_name)
        return {"ran": module_name, "args": module_args}


def test_run_probe_pipes_or_falls_back_to_the_module(tmp_path: Path) -> None:
    host = tmp_path / "host"
    smi.install_host(host, gpu.GpuState(), sys.executable)
    args = {"sysfs_root": str(host / "root"), "rocm_path": str(host / "root/opt/rocm"),
            "container_filters": ["label=x"]}
    piped = _Action(pipelining=True)
    result = remote.run_probe(piped, {"ansible_python_interpreter": sys.executable},
                              "partition_probe", "fleetbench_partition_probe", args)
    assert piped.modules == [] and "failed" not in result, result
    assert result["kfd_processes"] == [] and result["docker_ps"]["rc"] in (0, 1, 127)  # type: ignore[index]
    assert set(result["tools"]) == {"amd-smi", "rocm-smi"}  # type: ignore[arg-type]
    module = _Action(pipelining=False)
    assert remote.run_probe(module, {}, "partition_probe", "fleetbench_partition_probe",
                            args) == {"ran": "fleetbench_partition_probe", "args": args}
