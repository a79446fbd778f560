#!/usr/bin/python
"""Gather everything fleetbench needs to judge a GPU host, in one remote call.

Runs on the target with the standard library only: nothing of fleetbench is installed
there. It reads files and runs read-only commands; it never changes the host. The raw
text is returned as is and judged on the controller (see the action plugin of the same
name), so parsing lives in tested Python, not here.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleetbench_probe
short_description: Read-only probe of a GPU host (Docker, ROCm, disk, partitions)
description:
  - Reads sysfs partition files of every amdgpu PCI device, the KFD topology, the ROCm
    version file, free disk space, and runs C(docker version), C(amd-smi) and C(rocm-smi)
    in their JSON forms. Returns the raw outputs.
options:
  sysfs_root: {type: str, default: /, description: Root of the sysfs tree.}
  rocm_path: {type: str, default: /opt/rocm, description: ROCm installation folder.}
  disk_path: {type: str, default: /var/lib/docker, description: Folder whose free space counts.}
  command_timeout: {type: int, default: 60, description: Seconds any one command may take.}
author: fleetbench
"""

import glob
import json
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


def free_disk(path):
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/")) or "/"
    stat = os.statvfs(probe)
    return {"path": path, "measured_at": probe,
            "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize}


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "str", "default": "/"},
            "rocm_path": {"type": "str", "default": "/opt/rocm"},
            "disk_path": {"type": "str", "default": "/var/lib/docker"},
            "command_timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    params = module.params
    timeout = params["command_timeout"]
    root = params["sysfs_root"]
    smi = []
    for tool, args in SMI_COMMANDS:
        outcome = run([tool] + args, timeout)
        outcome.update({"tool": tool, "args": args})
        smi.append(outcome)
    docker = run(["docker", "version", "--format", "{{json .Server}}"], timeout)
    server = None
    if docker["rc"] == 0:
        try:
            server = json.loads(docker["stdout"])
        except ValueError:
            server = None
    module.exit_json(
        changed=False,
        hostname=os.uname()[1],
        kernel=os.uname()[2],
        raw={
            "sysfs_devices": sysfs_devices(root),
            "kfd_nodes": kfd_nodes(root),
            "smi": smi,
        },
        rocm_version=(read_text(os.path.join(params["rocm_path"], ".info", "version")) or "").strip()
        or None,
        driver_version=(read_text(under(root, "sys/module/amdgpu/version")) or "").strip() or None,
        docker={
            "rc": docker["rc"],
            "server_version": (server or {}).get("Version"),
            "error": docker["stderr"].strip()[-500:] if docker["rc"] != 0 else None,
        },
        disk=free_disk(params["disk_path"]),
    )


if __name__ == "__main__":
    main()
