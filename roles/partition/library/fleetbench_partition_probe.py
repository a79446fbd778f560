#!/usr/bin/python
"""Read a GPU host's partition state and who uses its GPUs, in one remote call.

Runs on the target with the standard library only. It reads files and runs read-only
commands; it never changes the host. Raw text goes back to the controller, where the
action plugin of the same name judges it with fleetbench (parsing lives in tested Python).

The sysfs/KFD/amd-smi/rocm-smi part gathers the same ``raw`` data as the preflight role's
``fleetbench_probe`` (roles do not share modules), plus the GPU users: the KFD
``proc/<pid>`` entries (one per process holding /dev/kfd open) and ``docker ps``.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_partition_probe
short_description: Read-only probe of a GPU host's partitions and GPU users
description:
  - Reads the sysfs partition files of every amdgpu PCI device, the KFD topology, the KFD
    process list (with each process's comm and cmdline), the ROCm and amdgpu versions,
    runs C(docker ps) and C(amd-smi)/C(rocm-smi) in their JSON forms, and says where
    amd-smi and rocm-smi are installed. Returns the raw outputs.
options:
  sysfs_root: {type: str, default: /, description: Root of the sys and proc trees.}
  rocm_path: {type: str, default: /opt/rocm, description: ROCm installation folder.}
  container_filters:
    {type: list, elements: str, default: [], description: docker ps --filter values.}
  command_timeout: {type: int, default: 60, description: Seconds any one command may take.}
author: fleetbench
"""

import glob
import os
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

SYSFS_FILES = (
    "current_compute_partition",
    "available_compute_partition",
    "current_memory_partition",
    "available_memory_partition",
)
SMI_COMMANDS = (
    ("amd-smi", ["static", "--partition", "--json"]),
    ("rocm-smi", ["--showcomputepartition", "--showmemorypartition", "--json"]),
)
MAX_FILE_BYTES = 65536


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(MAX_FILE_BYTES)
    except OSError:
        return None


def under(root, *parts):
    return os.path.join(root, *[p.lstrip("/") for p in parts])


def sysfs_devices(root):
    seen = {}
    patterns = (
        under(root, "sys/bus/pci/devices/*/current_compute_partition"),
        under(root, "sys/module/amdgpu/drivers/pci:amdgpu/*/current_compute_partition"),
        under(root, "sys/class/drm/card*/device/current_compute_partition"),
    )
    for pattern in patterns:
        for path in glob.glob(pattern):
            device = os.path.dirname(path)
            real = os.path.realpath(device)
            if real in seen:
                continue
            files = {}
            for name in SYSFS_FILES:
                text = read_text(os.path.join(device, name))
                if text is not None:
                    files[name] = text
            seen[real] = {"path": real[len(root.rstrip("/")):] if root != "/" else real,
                          "files": files}
    return [seen[key] for key in sorted(seen)]


def kfd_nodes(root):
    nodes = []
    base = under(root, "sys/class/kfd/kfd/topology/nodes")
    for node_dir in glob.glob(os.path.join(base, "*")):
        name = os.path.basename(node_dir)
        if not name.isdigit():
            continue
        banks = []
        for bank in sorted(glob.glob(os.path.join(node_dir, "mem_banks", "*", "properties"))):
            text = read_text(bank)
            if text is not None:
                banks.append(text)
        nodes.append({
            "id": int(name),
            "properties": read_text(os.path.join(node_dir, "properties")) or "",
            "mem_banks": banks,
        })
    return sorted(nodes, key=lambda node: node["id"])


def kfd_processes(root):
    # KFD keeps proc/<pid> for every process that holds /dev/kfd open: the GPU users.
    found = []
    for entry in glob.glob(under(root, "sys/class/kfd/kfd/proc/*")):
        pid = os.path.basename(entry)
        if not pid.isdigit():
            continue
        found.append({
            "pid": int(pid),
            "comm": read_text(under(root, "proc", pid, "comm")),
            "cmdline": read_text(under(root, "proc", pid, "cmdline")),
        })
    return sorted(found, key=lambda process: process["pid"])


def find_tool(name, rocm_path):
    # An absolute path: the set commands may run under sudo, whose secure_path lacks ROCm.
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    candidate = os.path.join(rocm_path, "bin", name)
    return candidate if os.access(candidate, os.X_OK) else None


def run(argv, timeout):
    binary = shutil.which(argv[0])
    if binary is None:
        return {"rc": 127, "stdout": "", "stderr": argv[0] + ": command not found"}
    try:
        done = subprocess.run([binary] + argv[1:], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": 124, "stdout": "", "stderr": "timed out after %ss" % timeout}
    except OSError as exc:
        return {"rc": 126, "stdout": "", "stderr": str(exc)}
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "str", "default": "/"},
            "rocm_path": {"type": "str", "default": "/opt/rocm"},
            "container_filters": {"type": "list", "elements": "str", "default": []},
            "command_timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    params = module.params
    timeout = params["command_timeout"]
    root = params["sysfs_root"]
    # GPU users first: the SMI tools below open the GPUs themselves for a moment.
    processes = kfd_processes(root)
    docker_argv = ["docker", "ps", "--no-trunc", "--format", "{{json .}}"]
    for value in params["container_filters"]:
        docker_argv += ["--filter", value]
    docker_ps = run(docker_argv, timeout)
    smi = []
    for tool, args in SMI_COMMANDS:
        outcome = run([tool] + args, timeout)
        outcome.update({"tool": tool, "args": args})
        smi.append(outcome)
    module.exit_json(
        changed=False,
        hostname=os.uname()[1],
        raw={
            "sysfs_devices": sysfs_devices(root),
            "kfd_nodes": kfd_nodes(root),
            "smi": smi,
        },
        kfd_processes=processes,
        docker_ps=docker_ps,
        tools={tool: find_tool(tool, params["rocm_path"]) for tool in ("amd-smi", "rocm-smi")},
        rocm_version=(read_text(under(params["rocm_path"], ".info/version")) or "").strip() or None,
        driver_version=(read_text(under(root, "sys/module/amdgpu/version")) or "").strip() or None,
    )


if __name__ == "__main__":
    main()
